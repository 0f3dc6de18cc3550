"""The drawing pad is never replaced (issue 23): a stroke right after Clear, on a server that
has just started, is read; and Clear, a label, a model change and a teaching run's end all
keep the one pad the visitor draws on."""

import pytest
from test_browser_class import mnist_root

from bench.browser import (
    BLANK_PAD,
    PAD_SELECTOR,
    body_has,
    clear_then_draw,
    draw,
    new_page,
    one,
    pad,
    serve_app,
    zero,
)

from helpers import prediction, shot

pytestmark = pytest.mark.browser
FRESH_SERVERS = 10


def test_a_zero_drawn_one_second_after_clear_on_a_fresh_server_is_read(browser, tiny_root, tmp_path):
    """Ten servers, each started afresh: the pad appears, 2 s later a 1, Clear, 1 s later a 0,
    drawn where the pad was, as a person would. Every 0 must be read."""
    env = {"MNIST_ROOT": mnist_root(tiny_root), "MLP_DEMO_CHECKPOINTS": str(tmp_path)}
    results = []
    for _ in range(FRESH_SERVERS):
        with serve_app(env) as url:
            results.append(clear_then_draw(browser, url))
    assert all(r["zero_read"] for r in results), results


def test_clear_a_label_a_model_change_and_teaching_keep_the_same_pad(browser, tiny_root, tmp_path):
    env = {"MNIST_ROOT": mnist_root(tiny_root), "MLP_DEMO_CHECKPOINTS": str(tmp_path)}
    with serve_app(env) as url:
        page = new_page(browser)
        page.goto(url)
        box = pad(page)
        body_has(page, BLANK_PAD, 60_000)
        canvas = page.locator(PAD_SELECTOR)
        canvas.evaluate("c => { c.dataset.marked = 'yes'; }")  # a new pad would not carry it

        def same_pad() -> bool:
            return canvas.count() == 1 and canvas.evaluate("c => c.dataset.marked") == "yes"

        draw(page, one(), box)
        assert prediction(page) == "Prediction: 1"
        page.locator(".st-key-label_1 button").click()
        body_has(page, "Added as a 1", 20_000)
        assert same_pad()
        page.get_by_role("button", name="Clear", exact=True).click()
        body_has(page, BLANK_PAD, 20_000)
        assert same_pad()
        page.get_by_role("button", name="Teach", exact=True).click()
        body_has(page, "Before and after", 120_000)  # the teaching run ended
        model = page.get_by_label("Model", exact=True)
        model.click()
        page.get_by_role("option", name="Shipped model", exact=False).click()
        page.wait_for_function("() => document.querySelector('.st-key-model_choice input')"
                               ".value.startsWith('Shipped model')", timeout=20_000)
        assert same_pad()
        draw(page, zero(), box)
        body_has(page, "Prediction: 0", 20_000)
        assert same_pad()
        page.close()


def touch_stroke(page, points, box) -> None:
    """A finger's stroke, as a phone's touch screen sends it (Pointer Events of type touch)."""
    cdp = page.context.new_cdp_session(page)
    at = [{"x": box["x"] + x, "y": box["y"] + y} for x, y in points]
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [at[0]]})
    for point in at[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def test_a_finger_draws_on_a_phone_and_sees_the_bars_without_scrolling(browser, tiny_root, tmp_path):
    env = {"MNIST_ROOT": mnist_root(tiny_root), "MLP_DEMO_CHECKPOINTS": str(tmp_path)}
    with serve_app(env) as url:
        context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True,
                                      is_mobile=True, device_scale_factor=2)
        page = context.new_page()
        page.goto(url)
        box = pad(page)
        body_has(page, BLANK_PAD, 60_000)
        page.evaluate("() => window.scrollTo(0, 0)")
        box = page.locator(PAD_SELECTOR).bounding_box()
        assert box["y"] + box["height"] <= 844, box  # the pad in the first screen
        scrolled = page.evaluate("() => window.scrollY")
        touch_stroke(page, one(), box)
        body_has(page, "Prediction: 1", 20_000)
        assert page.evaluate("() => window.scrollY") == scrolled  # drawing did not scroll the page
        bars = page.locator(".mlp-pad .bars").bounding_box()
        assert bars["y"] + bars["height"] <= 844, bars  # the answer in view while drawing
        shot(page, "phone-drawn-1")
        context.close()
