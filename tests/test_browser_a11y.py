"""Accessibility is a test: axe-core (from the npm registry, pinned in package-lock.json; `npm ci`)
audits every view against the WCAG 2.1 A and AA rules, and any violation fails. Views: first
paint, after a drawing with Why this prediction, during and after training with Compare runs and
Look inside, on a desktop and a phone, and the class board with and without the teacher's controls."""

import os

import pytest

from bench.browser import BLANK_PAD, REPO, body_has, draw, new_page, pad, serve_app, seven

from helpers import set_slider, shot, start_class, train_slowly

pytestmark = pytest.mark.browser
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AUDIT = """async (rules) => (await axe.run(document, { runOnly: { type: "tag", values: rules } }))
  .violations.map((v) => ({ rule: v.id, impact: v.impact,
                            where: v.nodes.slice(0, 3).map((n) => [n.target.join(" "), n.html.slice(0, 200),
                                                                   (n.any[0] || {}).message].join(" ")) }))"""


@pytest.fixture(scope="module")
def axe() -> str:
    if not AXE.exists():
        message = f"{AXE} is missing: run `npm ci` (see .ci/run)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    return AXE.read_text()


@pytest.fixture(scope="module")
def server(tmp_path_factory, app_mnist_root):
    env = {"MNIST_ROOT": app_mnist_root,
           "MLP_DEMO_CHECKPOINTS": str(tmp_path_factory.mktemp("saved") / "models")}
    new_class = start_class(env)
    with serve_app(env) as url:
        yield url, new_class


def violations(page, axe: str) -> list:
    page.add_script_tag(content=axe)
    return page.evaluate(AUDIT, RULES)


def audited(page, axe, view: str) -> None:
    """No violation that lasts: Streamlit dims a section while it reruns (the board every 3 s),
    which a single audit can catch mid-fade, so a violation counts when three audits, a second
    apart, all find it."""
    shot(page, f"a11y-{view}")
    lasting = None
    for _ in range(3):
        found = {(v["rule"], tuple(v["where"])): v for v in violations(page, axe)}
        lasting = found if lasting is None else {k: v for k, v in lasting.items() if k in found}
        if not lasting:
            return
        page.wait_for_timeout(1000)
    assert not lasting, f"{view}: {list(lasting.values())}"


@pytest.mark.parametrize("size", [(1400, 900), (390, 844)], ids=["desktop", "phone"])
def test_every_view_of_a_visitor_meets_wcag_21_aa(browser, server, axe, size):
    url, _ = server
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    page.goto(url)
    pad(page)
    body_has(page, BLANK_PAD, 60_000)
    page.get_by_role("button", name="Train", exact=True).and_(page.locator("button:enabled")).wait_for()
    audited(page, axe, f"first-paint-{size[0]}")
    draw(page, seven())
    body_has(page, "Why this prediction", 30_000)
    audited(page, axe, f"after-a-drawing-{size[0]}")
    if size[0] < 1000:
        page.close()
        return
    train_slowly(page)
    page.wait_for_function("() => document.querySelector('.st-key-curves .js-plotly-plot')",
                           timeout=120_000)
    audited(page, axe, "training")
    page.get_by_role("button", name="Stop", exact=True).click()
    body_has(page, "Compare runs", 30_000)
    body_has(page, "Confusion matrix", 60_000)
    audited(page, axe, "after-training-compare-and-inside")
    set_slider(page, "epochs", "Home", "1")
    page.close()


def test_the_class_board_and_the_teachers_board_meet_wcag_21_aa(browser, server, axe):
    url, new_class = server
    for view, path in (("board", f"?class={new_class['code']}&view=board"),
                       ("teachers-board", new_class["teacher_path"])):
        page = new_page(browser)
        page.set_viewport_size({"width": 1920, "height": 1080})  # a projector
        page.goto(url + path)
        body_has(page, "Students joined", 60_000)
        audited(page, axe, view)
        page.close()
