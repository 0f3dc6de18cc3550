"""A lesson and the class's own handwriting, in a real browser: the teacher locks the learning
rate and hides the optimizer, two students see that in their sidebars (a forged link changes
nothing), give 5 labelled drawings each, and a finished run is scored on the 10."""

import pytest
import test_browser_a11y
import test_browser_board
from test_browser_a11y import audited
from test_browser_board import open_app, start_a_class

from bench.browser import BLANK_PAD, body_has, draw, new_page

from helpers import shot

pytestmark = pytest.mark.browser
server = test_browser_board.server  # the same server fixture: an app with an SQLite class database
axe = test_browser_a11y.axe


def query(page, name: str) -> str | None:
    return page.evaluate("n => new URLSearchParams(location.search).get(n)", name)


def choose(page, key: str, option: str) -> None:
    """Add an option to a multiselect. The board above redraws every 3 s, which can close an
    open list: open it again until the choice shows."""
    chosen = page.locator(f".st-key-{key} [data-tag]", has_text=option)
    for _ in range(10):
        if chosen.count():
            return
        page.locator(f".st-key-{key} input").click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=3_000)
            page.keyboard.press("Escape")
            chosen.wait_for(timeout=3_000)
        except Exception:  # noqa: BLE001 - the list closed under the redraw: again
            continue
    assert chosen.count() == 1


def set_lesson(browser, teacher_link: str):
    teacher = new_page(browser)
    teacher.set_viewport_size({"width": 1600, "height": 1400})
    teacher.goto(teacher_link)
    body_has(teacher, "Teacher", 60_000)
    teacher.get_by_text("Lesson: what the class may change").click()
    choose(teacher, "lesson_lock", "learning rate")
    value = teacher.locator(".st-key-lesson_value_lr input")
    value.fill("0.01")
    value.press("Enter")
    choose(teacher, "lesson_hide", "optimizer")
    teacher.get_by_role("button", name="Save the lesson").click()
    body_has(teacher, "Saved: the learning rate locked at 0.01; the optimizer hidden", 30_000)
    return teacher


def slanted_stroke(i: int) -> list[tuple[float, float]]:
    """Five different ones: each leans another way (Your examples refuse a repeat)."""
    lean = (-4, -2, 0, 2, 4)[i]
    return [(140 + lean * (k - 10), 40 + k * 10) for k in range(21)]


def label_ones(student, count: int) -> None:
    """Draw `count` different 1s and label each as a 1: they join Your examples."""
    for i in range(count):
        draw(student, slanted_stroke(i))
        student.get_by_text("Prediction:").wait_for(timeout=30_000)
        student.locator(".st-key-label_1 button").click()
        body_has(student, f"Added as a 1: {i + 1} in Your examples", 30_000)
        student.get_by_role("button", name="Clear", exact=True).click()
        body_has(student, BLANK_PAD, 30_000)


def join_and_give_drawings(browser, link: str, name: str):
    student = open_app(browser, link)
    student.get_by_label("Your name on the board").fill(name)
    student.get_by_role("button", name="Join", exact=True).click()
    body_has(student, "You are on the board", 30_000)
    label_ones(student, 5)
    student.get_by_role("button", name="Add 5 to the class's handwriting").click()
    body_has(student, "Added 5 drawings to the class's handwriting", 30_000)
    return student


def test_a_lesson_locks_and_hides_and_runs_are_scored_on_the_class_handwriting(browser, server, axe):
    join_link, teacher_link = start_a_class(browser, server)
    teacher = set_lesson(browser, teacher_link)

    ana = join_and_give_drawings(browser, join_link, "Ana")
    sidebar = ana.locator("[data-testid=stSidebar]")
    body_has(ana, "Your class's lesson: the learning rate locked at 0.01; the optimizer hidden", 30_000)
    assert sidebar.locator(".st-key-hp_lr input").is_disabled()
    assert sidebar.locator(".st-key-hp_lr input").get_attribute("aria-valuetext") == "0.01"
    assert sidebar.locator(".st-key-hp_optimizer").count() == 0
    assert query(ana, "lr") == "0.01"
    shot(ana, "lesson-student")

    ben = join_and_give_drawings(browser, join_link + "&lr=0.1&optimizer=sgd", "Ben")  # forged
    ben.wait_for_function("() => new URLSearchParams(location.search).get('lr') === '0.01'",
                          timeout=30_000)
    assert query(ben, "optimizer") == "adam"
    body_has(ben, "fixes the learning rate at 0.01, so the link's 0.1 is not used", 30_000)
    audited(ben, axe, "lesson-and-a-link-it-overrides")  # the sidebar's lesson and its notices

    field = ana.locator(".st-key-hp_val_size input")  # the tiny MNIST has 1,200 images
    field.fill("200")
    field.press("Enter")
    ana.wait_for_function("() => new URLSearchParams(location.search).get('val_size') === '200'")
    ana.get_by_role("button", name="Train", exact=True).click()
    body_has(ana, "is on the class board. It read", 300_000)
    assert "of the class's 10 drawings" in ana.inner_text("body")

    body_has(teacher, "1 run in", 60_000)
    teacher.wait_for_function("() => { const p = document.querySelector('.st-key-board_handwriting "
                              ".js-plotly-plot'); return p && p.data && p.data[1].x.length === 1; }",
                              timeout=30_000)
    hover = teacher.evaluate("() => document.querySelector('.st-key-board_handwriting "
                             ".js-plotly-plot').data[1].hovertext[0]")
    assert hover == "Ana (#1), on 10 drawings"
    teacher.get_by_text("The class's handwriting", exact=True).click()
    body_has(teacher, "10 drawings · 0: 0 · 1: 10", 30_000)
    shot(teacher, "lesson-teacher")
    for page in (teacher, ana, ben):
        page.close()
