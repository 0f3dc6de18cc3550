"""A lecture hall's replicas, in a real browser: two app processes on one PostgreSQL and one
models folder. A model uploaded through one is listed through the other; its owner is the
visitor of the proxy's cookie, on both, and after a restart of the process it was saved on."""

import pytest

from bench.browser import BLANK_PAD, body_has, pad, serve_app

from helpers import crafted, shot

pytestmark = pytest.mark.browser
VISITOR = "ana_visitor_0123456789abcdef"  # as deploy/nginx.conf issues it (16-64 URL-safe characters)


def open_page(context, url):
    page = context.new_page()
    page.goto(url)
    pad(page)
    body_has(page, BLANK_PAD, 60_000)
    return page


def shows_as_mine(page, name: str) -> None:
    """The model is in the visitor's own list (what only its owner may delete)."""
    page.wait_for_function(
        "n => { const i = document.querySelector('.st-key-delete_name input'); return i && i.value === n; }",
        arg=name, timeout=30_000)


def listed(page, name: str) -> bool:
    """The model shows in the models table within 30 s (the grid draws its rows after the
    table itself appears, later on a slow machine)."""
    try:
        page.wait_for_function(
            "n => [...document.querySelectorAll('[role=row]')].some(r => r.innerText.includes(n))",
            arg=name, timeout=30_000)
        return True
    except Exception:  # noqa: BLE001 - playwright's TimeoutError: not listed
        return False


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_replicas_share_models_and_the_cookies_owner_survives_a_restart(browser, tmp_path,
                                                                            tiny_root, database_url):
    env = {"MNIST_ROOT": str(tiny_root), "MLP_DEMO_CHECKPOINTS": str(tmp_path / "shared-models"),
           "MLP_DEMO_DATABASE_URL": database_url}
    ana = browser.new_context(viewport={"width": 1400, "height": 1000})
    ana.add_cookies([{"name": "mlp_demo_visitor", "value": VISITOR, "domain": "127.0.0.1", "path": "/"}])
    stranger = browser.new_context(viewport={"width": 1400, "height": 1000})
    checkpoint = crafted(tmp_path / "hall-model.safetensors", {"metrics": '{"test_acc": 0.5}'})
    with serve_app(env) as replica_a, serve_app(env) as replica_b:
        page = open_page(ana, replica_a)
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(checkpoint))
        body_has(page, "Added hall-model", 30_000)
        shows_as_mine(page, "hall-model")
        on_b = open_page(ana, replica_b)  # the same browser, on the other replica
        shows_as_mine(on_b, "hall-model")
        other = open_page(stranger, replica_b)
        assert listed(other, "hall-model")
        assert other.locator(".st-key-delete_name").count() == 0  # listed, but not theirs
        shot(on_b, "hall-replica-b")
    with serve_app(env) as replica_a:  # replica A restarted: a new process
        shows_as_mine(open_page(ana, replica_a), "hall-model")
    ana.close()
    stranger.close()
