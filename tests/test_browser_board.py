"""A class in a real browser: a teacher starts it, three students join through the link and
train, and the projector's board fills up by itself; what the teacher hides leaves every view."""

import pytest

from bench.browser import BLANK_PAD, body_has, new_page, pad, serve_app

from helpers import set_slider, shot

pytestmark = pytest.mark.browser
LEARNING_RATES = ("0.001", "0.003", "0.01")


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_root):
    folder = tmp_path_factory.mktemp("class")
    env = {"MNIST_ROOT": str(tiny_root), "MLP_DEMO_CHECKPOINTS": str(folder / "models"),
           "MLP_DEMO_DATABASE_URL": f"sqlite:///{folder / 'classes.sqlite3'}"}
    with serve_app(env) as url:
        yield url


def open_app(browser, url: str):
    page = new_page(browser)
    page.goto(url)
    pad(page)
    body_has(page, BLANK_PAD, 60_000)
    return page


def start_a_class(browser, url: str) -> tuple[str, str]:
    """The teacher's tab: Start a class; returns the join link and the teacher link."""
    teacher = open_app(browser, url)
    teacher.get_by_role("button", name="Start a class").click()
    teacher.locator("[data-testid=stCode]", has_text="teacher=").wait_for(timeout=30_000)
    links = [c.inner_text().strip() for c in teacher.locator("[data-testid=stCode]").all()]
    join = next(link for link in links if "class=" in link and "teacher=" not in link)
    teacher_link = next(link for link in links if "teacher=" in link)
    assert teacher_link.split("teacher=")[1] not in join
    shot(teacher, "class-started")
    teacher.close()
    return join, teacher_link


def join_and_train(browser, join_link: str, name: str, lr: str):
    student = open_app(browser, join_link)
    student.get_by_label("Your name on the board").fill(name)
    student.get_by_role("button", name="Join", exact=True).click()
    body_has(student, "You are on the board", 30_000)
    field = student.locator(".st-key-hp_val_size input")  # the tiny MNIST has 1,200 images
    field.fill("200")
    field.press("Enter")
    student.wait_for_function("() => new URLSearchParams(location.search).get('val_size') === '200'")
    set_slider(student, "epochs", "Home", "1")
    set_slider(student, "batch_size", "Home", "16")
    slider = student.locator(".st-key-hp_lr input")
    for _ in range(12):  # walk the learning rate to this student's value
        now = student.evaluate("() => new URLSearchParams(location.search).get('lr')")
        if now == lr:
            break
        slider.focus()
        student.keyboard.press("ArrowLeft" if float(now) > float(lr) else "ArrowRight")
        student.wait_for_function("v => new URLSearchParams(location.search).get('lr') !== v", arg=now)
    assert student.evaluate("() => new URLSearchParams(location.search).get('class')")  # kept
    student.get_by_role("button", name="Train", exact=True).click()
    return student


def choose_entry(teacher, label: str) -> None:
    """Choose one entry in the teacher's list. The board redraws every 3 s, which can close an
    open list: open it again until the choice shows, and never choose a second one."""
    chosen = teacher.locator(".st-key-board_hide [data-tag]", has_text=label)
    for _ in range(10):
        if chosen.count():
            break
        teacher.locator(".st-key-board_hide input").click()
        try:
            teacher.get_by_role("option", name=label).click(timeout=3_000)
            teacher.keyboard.press("Escape")
            chosen.wait_for(timeout=3_000)
        except Exception:  # noqa: BLE001 - the list closed under the redraw: again
            continue
    assert teacher.locator(".st-key-board_hide [data-tag]").count() == 1


def runs_in(page) -> int:
    found = page.evaluate("() => (document.body.innerText.match(/(\\d+) runs? in/) || [])[1]")
    return int(found) if found else -1


def scatter_points(page) -> int:
    return page.evaluate("() => { const p = document.querySelector('.st-key-board_scatter .js-plotly-plot');"
                         " return p && p.data ? p.data.reduce((n, t) => n + t.x.length, 0) : 0; }")


def readable_from_the_back_row(board) -> None:
    """The board's tables in projector type, every cell whole and in words, and the join QR."""
    cells = board.evaluate("""() => [...document.querySelectorAll(
        '.st-key-board_leaders :is(th, td), .st-key-board_groups :is(th, td)')]
        .map(c => ({text: c.innerText.trim(), cut: c.scrollWidth > c.clientWidth + 1,
                    px: parseFloat(getComputedStyle(c).fontSize)}))""")
    assert cells and not [c for c in cells if c["cut"]], [c["text"] for c in cells if c["cut"]]
    assert not [c for c in cells if c["text"] in ("None", "nan", "NaN", "null")]
    label_px = board.evaluate("() => parseFloat(getComputedStyle(document.querySelector("
                              "'[data-testid=stMetricLabel] p')).fontSize)")
    assert min(c["px"] for c in cells) >= label_px  # at least the size of the metrics' labels
    headers = {c["text"] for c in cells}
    assert "lr" not in headers and not any(c["text"] in ("lr", "batch_size") for c in cells)
    assert board.locator("img[alt^='QR code of the join link']").count() == 1


def test_three_students_fill_the_board_and_a_hidden_entry_leaves_every_view(browser, server):
    join_link, teacher_link = start_a_class(browser, server)
    board = new_page(browser)
    board.set_viewport_size({"width": 1600, "height": 1400})
    board.goto(join_link + "&view=board")
    body_has(board, "Class board", 60_000)
    body_has(board, "0 runs in", 60_000)
    students = [join_and_train(browser, join_link, name, lr)
                for name, lr in zip(("Ada", "<b>Bo</b>", "Cy **x**"), LEARNING_RATES)]
    board.wait_for_function("() => /\\b3 runs in/.test(document.body.innerText)", timeout=300_000)
    board.wait_for_function("() => { const p = document.querySelector('.st-key-board_scatter "
                            ".js-plotly-plot'); return p && p.data && p.data.reduce((n, t) => "
                            "n + t.x.length, 0) === 3; }", timeout=30_000)
    assert scatter_points(board) == 3
    board.locator(".st-key-board_leaders [data-testid=stTable]").wait_for(timeout=30_000)
    board.wait_for_function("() => document.querySelectorAll('.st-key-board_leaders tr').length"
                            " === 4", timeout=30_000)  # a header and three runs
    rows = board.evaluate("() => [...document.querySelectorAll('.st-key-board_leaders tr')]"
                          ".map(r => r.innerText)")
    assert any("<b>Bo</b>" in r for r in rows) and any("Cy **x**" in r for r in rows)  # as typed
    assert "3 students" in board.inner_text("body")
    assert "<b>Bo</b>" not in board.content().replace("&lt;b&gt;Bo&lt;/b&gt;", "")  # never markup
    shot(board, "class-board")
    for width, height in ((1920, 1080), (1600, 900)):  # a projector, and a smaller one
        board.set_viewport_size({"width": width, "height": height})
        board.wait_for_function(  # the page has laid itself out again at this width
            "w => document.querySelector('.st-key-board_leaders').getBoundingClientRect().right <= w",
            arg=width, timeout=30_000)
        readable_from_the_back_row(board)
        shot(board, f"class-board-{width}x{height}")
        board.locator(".st-key-board_leaders").scroll_into_view_if_needed()
        shot(board, f"class-board-{width}x{height}-tables")
        board.evaluate("() => document.querySelector('.stMain').scrollTo(0, 0)")

    teacher = new_page(browser)
    teacher.set_viewport_size({"width": 1600, "height": 1400})
    teacher.goto(teacher_link)
    body_has(teacher, "Teacher", 60_000)
    assert "teacher=" not in teacher.url  # the key left the address bar
    choose_entry(teacher, "#1 Ada")
    teacher.get_by_role("button", name="Hide", exact=True).click()
    teacher.wait_for_function("() => /\\b2 runs in/.test(document.body.innerText)", timeout=30_000)
    board.wait_for_function("() => /\\b2 runs in/.test(document.body.innerText)", timeout=30_000)
    board.wait_for_function("() => { const p = document.querySelector('.st-key-board_scatter "
                            ".js-plotly-plot'); return p && p.data && p.data.reduce((n, t) => "
                            "n + t.x.length, 0) === 2; }", timeout=30_000)
    for view in (board, teacher):  # the leaderboard too
        view.wait_for_function("() => document.querySelectorAll('.st-key-board_leaders tr')"
                               ".length === 3", timeout=30_000)
        leaders = view.evaluate("() => [...document.querySelectorAll('.st-key-board_leaders "
                                "tr')].map(r => r.innerText).join(' ')")
        assert "Ada" not in leaders and "Bo" in leaders
    for page in (*students, board, teacher):
        page.close()
