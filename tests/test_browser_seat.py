"""A student who reloads stays the same student (issue 33): the browser keeps the seat's token
(localStorage, and a cookie the server reads on the first run), in a plain tab and inside a
cross-site iframe as on a Space; a forged token joins nobody. And the Class section follows the
student's own actions at once."""

import json
import subprocess

import pytest
import test_browser_board
from test_browser_board import open_app, start_a_class
from test_browser_lesson import label_ones, set_lesson

from bench.browser import BLANK_PAD, PAD_SELECTOR, body_has, serve_app

from helpers import serve_page, shot

pytestmark = pytest.mark.browser
server = test_browser_board.server  # an app with an SQLite class database


def students_joined(teacher, fresh: bool = False) -> str:
    """The board's count; fresh: from a reload of the board, read after everything before it."""
    if fresh:
        teacher.reload()
        teacher.locator("[data-testid=stMetric]", has_text="Students joined").wait_for(timeout=60_000)
    metric = teacher.locator("[data-testid=stMetric]", has_text="Students joined")
    return metric.locator("[data-testid=stMetricValue]").inner_text().strip()


def join(page_or_frame, name: str) -> None:
    page_or_frame.get_by_label("Your name on the board").fill(name)
    page_or_frame.get_by_role("button", name="Join", exact=True).click()
    page_or_frame.get_by_text("You are on the board").wait_for(timeout=30_000)


def test_a_student_who_reloads_is_the_same_student_under_the_lesson(browser, server):
    join_link, teacher_link = start_a_class(browser, server)
    teacher = set_lesson(browser, teacher_link)
    ana = open_app(browser, join_link)
    join(ana, "Ana")
    body_has(teacher, "1 student", 30_000)

    ana.reload()
    lr = ana.locator("[data-testid=stSidebar] .st-key-hp_lr input")
    lr.wait_for(timeout=60_000)
    # The first time the slider exists, the lesson already holds it: no moment to move it.
    assert lr.is_disabled() and lr.get_attribute("aria-valuetext") == "0.01"
    body_has(ana, "Your name on the board: Ana", 30_000)
    assert "Join your class" not in ana.inner_text("body")
    ana.get_by_role("button", name="Leave the class").wait_for()
    assert students_joined(teacher, fresh=True) == "1"  # read after the reload, not before
    shot(ana, "seat-after-reload")

    # Another browser that forges the seat (a token this class never issued, by both routes)
    # joins nobody and sees the join form.
    kept = ana.evaluate("() => JSON.parse(localStorage.getItem('mlp_demo.seat'))")
    assert kept["code"] in join_link and len(kept["token"]) == 32
    forged = {"code": kept["code"], "token": kept["token"][::-1]}
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(f"localStorage.setItem('mlp_demo.seat', {json.dumps(json.dumps(forged))})")
    context.add_cookies([{"name": "mlp_demo_seat", "value": f"{forged['code']}.{forged['token']}",
                          "url": server}])
    eve = context.new_page()
    eve.goto(join_link)
    body_has(eve, "Join your class", 60_000)
    eve.locator(PAD_SELECTOR).wait_for()
    # The server refused the forged seat and told the browser to forget it: the report was read.
    eve.wait_for_function("() => localStorage.getItem('mlp_demo.seat') === null", timeout=60_000)
    assert "Your name on the board:" not in eve.inner_text("body")
    assert students_joined(teacher, fresh=True) == "1"

    ana.get_by_role("button", name="Leave the class").click()
    body_has(ana, "Join your class", 30_000)
    ana.wait_for_function("() => localStorage.getItem('mlp_demo.seat') === null", timeout=30_000)
    ana.reload()
    body_has(ana, "Join your class", 60_000)  # a student who left stays out
    for page in (ana, teacher):
        page.close()
    context.close()


@pytest.fixture(scope="module")
def https_server(tmp_path_factory, tiny_root):
    """The app over HTTPS (a self-signed certificate), as a Space serves it: only there does a
    browser keep a cookie for a cross-site frame (Secure; SameSite=None; Partitioned)."""
    folder = tmp_path_factory.mktemp("https")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    env = {"MNIST_ROOT": str(tiny_root), "MLP_DEMO_CHECKPOINTS": str(folder / "models"),
           "MLP_DEMO_DATABASE_URL": f"sqlite:///{folder / 'classes.sqlite3'}",
           "STREAMLIT_SERVER_SSL_CERT_FILE": str(cert), "STREAMLIT_SERVER_SSL_KEY_FILE": str(key)}
    with serve_app(env) as url:
        yield url


def test_a_student_who_reloads_inside_a_cross_site_iframe_is_the_same_student(browser, https_server):
    """As on huggingface.co: the app (https://127.0.0.1) framed by a page of another site
    (localhost), in a browser that blocks third-party storage (Playwright's contexts do, as an
    incognito window does): the partitioned cookie keeps the seat."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, ignore_https_errors=True)
    teacher = context.new_page()
    teacher.goto(https_server)
    teacher.get_by_role("button", name="Start a class").click()
    join_code = teacher.locator("[data-testid=stCode]", has_text="class=").first.inner_text().strip()
    teacher.close()
    join_link = https_server + "/?" + join_code.split("?", 1)[1]
    outer_url, outer = serve_page(f'<iframe src="{join_link}" style="width:1400px;height:2400px">'
                                  "</iframe>")
    student = browser.new_context(viewport={"width": 1400, "height": 1000}, ignore_https_errors=True)
    page = student.new_page()
    page.goto(outer_url)
    frame = page.frame_locator("iframe")
    frame.get_by_text(BLANK_PAD).wait_for(timeout=60_000)
    join(frame, "Bo")
    frame.get_by_text("Your name on the board: Bo").wait_for(timeout=30_000)
    page.reload()
    frame = page.frame_locator("iframe")
    frame.get_by_text("Your name on the board: Bo").wait_for(timeout=60_000)
    assert frame.get_by_text("Join your class").count() == 0
    for each in (student, context):
        each.close()
    outer.shutdown()


def test_the_class_section_follows_add_at_once(browser, server):
    join_link, _ = start_a_class(browser, server)
    student = open_app(browser, join_link)
    join(student, "Cy")
    body_has(student, "0 drawings from the class so far, 0 of them yours", 30_000)
    take_out = student.get_by_role("button", name="Take mine out")
    assert take_out.is_disabled()
    label_ones(student, 3)
    student.get_by_role("button", name="Add 3 to the class's handwriting").click()
    body_has(student, "3 drawings from the class so far, 3 of them yours", 30_000)  # no other click
    body_has(student, "Added 3 drawings to the class's handwriting", 5_000)  # the message stays
    assert take_out.is_enabled()
    take_out.click()
    body_has(student, "0 drawings from the class so far, 0 of them yours", 30_000)
    assert take_out.is_disabled()
    student.close()
