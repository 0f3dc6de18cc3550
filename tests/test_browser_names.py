"""A name is text everywhere (issue 34): a student's name written as Markdown, HTML or KaTeX is
shown as typed on the join confirmation, the Class section and the board, and the browser fetches
nothing a name points at."""

import pytest
import test_browser_a11y

from bench.browser import BLANK_PAD, body_has, new_page, pad

pytestmark = pytest.mark.browser
NAMES = ["![i](http://e.x/i.png)", "**B** :red[R] $x^2$", "<img src=//e.x/h.png>"]  # at most 24
server = test_browser_a11y.server  # the same fixture: an app and a class started from the CLI


@pytest.mark.parametrize("name", NAMES)
def test_a_markdown_name_is_shown_as_typed_and_fetches_nothing(browser, server, name):
    url, new_class = server
    page = new_page(browser)
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{url}?class={new_class['code']}")
    pad(page)
    body_has(page, BLANK_PAD, 60_000)
    page.get_by_label("Your name on the board").fill(name)
    page.get_by_role("button", name="Join", exact=True).click()
    body_has(page, "You are on the board", 30_000)
    confirmation = page.locator("[data-testid=stAlert]", has_text="You are on the board").inner_text()
    assert name in confirmation, confirmation
    assert f"Your name on the board: {name}" in page.inner_text("body")
    board = new_page(browser)
    board.on("request", lambda r: requested.append(r.url))
    board.goto(f"{url}{new_class['teacher_path']}")
    body_has(board, "Students joined", 60_000)
    for shown in (page, board):
        assert shown.locator("img[src*='e.x']").count() == 0
        assert shown.locator(".katex").count() == 0
    assert not [r for r in requested if "e.x" in r], requested
    board.close()
    page.close()
