"""The tab that has just pressed Train (or Teach) still reads a drawing at once (issue 35): in a
class and not, on SQLite and on PostgreSQL. Every wait is on a state, with a bound generous
enough that only a stall exceeds it; each run lasts until the test stops it. The runs' live
models must read a drawn 1 after a few steps: that takes the real MNIST (real_root)."""
import time

import pytest

from bench.browser import BLANK_PAD, body_has, draw, new_page, one, pad, serve_app

from helpers import prediction, shot, start_class, train_slowly, vertical_stroke

pytestmark = pytest.mark.browser
STALL_MS = 45_000  # a stall, not a slow machine: an answer normally comes in about a second


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory, app_mnist_root):
    env = {"MNIST_ROOT": app_mnist_root,
           "MLP_DEMO_CHECKPOINTS": str(tmp_path_factory.mktemp("saved") / "models")}
    if request.param == "postgresql":
        env["MLP_DEMO_DATABASE_URL"] = request.getfixturevalue("postgres_server")
    new_class = start_class(env)
    with serve_app(env) as url:
        yield url, new_class["code"]


def open_tab(browser, url: str, join: str | None):
    page = new_page(browser)
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{url}?class={join}" if join else url)
    pad(page)
    body_has(page, BLANK_PAD, 60_000)
    if join:
        page.get_by_label("Your name on the board").fill("Ann")
        page.get_by_role("button", name="Join", exact=True).click()
        body_has(page, "You are on the board", 30_000)
    return page


@pytest.mark.parametrize("in_class", [False, True], ids=["alone", "in-a-class"])
def test_a_one_drawn_right_after_train_is_read_while_the_run_trains(browser, server, in_class, real_root):
    url, code = server
    page = open_tab(browser, url, code if in_class else None)
    train_slowly(page)
    draw(page, one())  # at once: the page may still be drawing Train's rerun
    body_has(page, "Prediction: 1", STALL_MS)
    stop = page.get_by_role("button", name="Stop", exact=True)
    assert stop.is_enabled(), "the run must still be training when the drawing is read"
    shot(page, f"busy-tab-train-{'class' if in_class else 'alone'}")
    stop.click()
    page.close()


def test_a_one_drawn_right_after_teach_is_read(browser, server):
    url, code = server
    page = open_tab(browser, url, code)
    draw(page, one())
    body_has(page, "Prediction: 1", STALL_MS)
    page.locator(".st-key-label_1 button").click()
    body_has(page, "Added as a 1", 30_000)
    page.get_by_role("button", name="Clear", exact=True).click()
    body_has(page, BLANK_PAD, 30_000)
    page.get_by_role("button", name="Teach", exact=True).click()
    draw(page, one())  # at once, while the teaching run is queued or going
    body_has(page, "Prediction:", STALL_MS)
    page.close()


def test_while_the_tab_trains_a_one_is_read_before_the_pen_lifts_and_explained_after(browser, server,
                                                                                      real_root):
    """The pad reads in the browser: Prediction: 1 shows while the mouse is still down, whatever
    the server is doing; the server's Why this prediction follows the pen lifting."""
    url, _ = server
    page = open_tab(browser, url, None)
    train_slowly(page)
    box = pad(page)
    points = one()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=4)  # slowly
    body_has(page, "Prediction: 1", STALL_MS)  # the pen is still down
    page.mouse.up()
    body_has(page, "Why this prediction", STALL_MS)
    stop = page.get_by_role("button", name="Stop", exact=True)
    assert stop.is_enabled(), "the run must still be training when the server has answered"
    stop.click()
    page.close()


def test_a_drawing_while_the_database_is_silent_is_answered_before_it_speaks(browser, app_mnist_root,
                                                                             postgres_server):
    """Issue 34, in a browser: a student in a class; the class's database goes silent (a proxy
    holds every byte); a 1 drawn meanwhile is read, and explained by the server, and a whole
    page run (Leave the class) finishes, all while the database is still silent."""
    from urllib.parse import urlsplit, urlunsplit

    from test_database_silence import SILENCE_S, SilentProxy
    parts = urlsplit(postgres_server)
    proxy = SilentProxy(parts.hostname, parts.port)
    netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    env = {"MNIST_ROOT": app_mnist_root,
           "MLP_DEMO_DATABASE_URL": urlunsplit(parts._replace(netloc=netloc))}
    try:
        with serve_app(env) as url:
            page = new_page(browser)
            page.goto(url)
            pad(page)
            body_has(page, BLANK_PAD, 60_000)
            page.get_by_role("button", name="Start a class").click()
            page.locator("[data-testid=stCode]", has_text="class=").first.wait_for(timeout=30_000)
            code = page.locator("[data-testid=stCode]").first.inner_text().split("class=")[1][:9]
            page.get_by_label("Class code", exact=True).fill(code)
            page.get_by_label("Your name on the board").fill("Ana")
            page.get_by_role("button", name="Join", exact=True).click()
            body_has(page, "You are on the board", 30_000)
            proxy.silence()
            silence_ends = time.monotonic() + SILENCE_S
            draw(page, vertical_stroke())
            assert prediction(page) == "Prediction: 1"
            body_has(page, "Why this prediction", SILENCE_S * 1000 / 2)  # the server's part too
            page.get_by_role("button", name="Leave the class").click()  # a full page run
            body_has(page, "Join your class", SILENCE_S * 1000 / 2)
            assert time.monotonic() < silence_ends  # all of it while the database was silent
            page.close()
    finally:
        proxy.speak()
