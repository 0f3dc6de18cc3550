"""Real-browser tests: `streamlit run app.py` on a free port, driven by Playwright in Chromium.

Select them alone with `pytest -m browser`. Screenshots land in test-artifacts/.
In CI (or with MLP_DEMO_BROWSER=1) a missing browser fails these tests instead of skipping them.
"""

import time
from pathlib import Path

import pytest

from bench.browser import BLANK_PAD, body_has, draw, new_page, pad, serve_app

from helpers import (
    circle,
    hostile_files,
    prediction,
    set_slider,
    settled,
    shot,
    train_slowly,
    vertical_stroke,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory):
    """The shared models folder, with files a hostile visitor could have left there."""
    folder = tmp_path_factory.mktemp("saved")
    hostile_files(folder)
    return folder


@pytest.fixture(scope="module")
def server(hostile_folder, app_mnist_root):
    with serve_app({"MNIST_ROOT": app_mnist_root, "MLP_DEMO_CHECKPOINTS": str(hostile_folder)}) as url:
        yield url


@pytest.fixture
def page(browser, server):
    page = new_page(browser)
    page.goto(server)
    pad(page)  # the page is usable once the drawing pad is there
    yield page
    page.close()


def test_drawn_one_and_zero_are_recognised(page):
    body_has(page, BLANK_PAD, 20_000)  # after torch loads
    draw(page, vertical_stroke())
    assert prediction(page) == "Prediction: 1"
    page.locator(".mlp-pad .bar.top").wait_for(timeout=10_000)  # the ten bars, in the browser
    shot(page, "drawn-1")
    page.get_by_role("button", name="Clear").click()
    body_has(page, BLANK_PAD, 10_000)
    draw(page, circle())
    body_has(page, "Prediction: 0", 20_000)
    shot(page, "drawn-0")


def curve_points(page) -> int:
    return page.evaluate("() => { const p = document.querySelector('.st-key-curves .js-plotly-plot');"
                         " return p && p.data ? p.data[0].x.length : 0; }")


def test_training_streams_curves_and_the_pad_keeps_working(page):
    train_slowly(page)  # still going when Stop is pressed below, however fast the machine
    page.wait_for_function("() => document.querySelector('.st-key-curves .js-plotly-plot')",
                           timeout=120_000)
    first = curve_points(page)
    page.wait_for_function(f"() => {{ const p = document.querySelector('.st-key-curves "
                           f".js-plotly-plot'); return p && p.data[0].x.length > {first}; }}",
                           timeout=30_000)
    draw(page, vertical_stroke())  # during training, with the live model selected
    assert prediction(page).startswith("Prediction:")
    shot(page, "training")
    page.get_by_role("button", name="Stop", exact=True).click()
    body_has(page, "stopped", 10_000)
    assert page.get_by_role("button", name="Train", exact=True).is_enabled()
    shot(page, "stopped")


def test_a_broken_upload_is_a_message(page, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x80\x04definitely not a checkpoint")
    settled(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(broken))
    body_has(page, "Not added", 20_000)
    assert "not a safetensors checkpoint" in page.inner_text("body")


def model_options(page) -> str:
    page.get_by_label("Model", exact=True).click()
    text = page.locator("[role=listbox]").inner_text()
    page.keyboard.press("Escape")
    return text


def assert_page_works(page) -> None:
    """Renders, lists the good models, and reads a drawn 1."""
    body_has(page, BLANK_PAD, 30_000)
    assert page.get_by_role("button", name="Train", exact=True).is_visible()
    options = model_options(page)
    assert "Shipped model" in options and "Saved: good" in options
    assert "Traceback" not in page.inner_text("body")
    draw(page, vertical_stroke())
    assert prediction(page) == "Prediction: 1"


def test_hostile_files_and_uploads_break_no_page(browser, server, hostile_folder, tmp_path):
    uploader = new_page(browser)
    uploader.goto(server)
    pad(uploader)
    body_has(uploader, "could not be read and are not listed", 30_000)
    for source in sorted(hostile_folder.glob("*.safetensors")):
        upload = tmp_path / f"up-{source.name}"
        upload.write_bytes(source.read_bytes())
        settled(uploader)  # the last upload's run has drawn its verdict and the uploader
        uploader.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(upload))
        body_has(uploader, upload.stem, 20_000)  # "Added up-x: ..." or "Not added: up-x ..."
        verdict = uploader.locator("[data-testid=stAlert]", has_text=upload.stem).first.inner_text()
        good = source.stem in ("good", "bad-metrics", "bad-acc")  # bad metrics are dropped, not fatal
        assert verdict.startswith("Added" if good else "Not added"), (source.name, verdict)
    assert_page_works(uploader)
    shot(uploader, "hostile-uploader")
    fresh = new_page(browser)
    fresh.goto(server)
    pad(fresh)
    assert_page_works(fresh)
    fresh.close()
    uploader.close()


FORGE = """() => {  // a modified browser: what the pad sends when the pen lifts is replaced
  const real = Array.from;
  Array.from = function (source, ...rest) {
    if (window.__forged !== undefined && source instanceof Float32Array && source.length === 784) {
      return window.__forged;
    }
    return real.call(this, source, ...rest);
  };
}"""
FORGED_FIELDS = {  # what each forged field must be refused for
    "[0.5, 0.5, 0.5]": "3 values, not 784",
    "Array(784).fill(null)": "other than numbers",  # NaN travels as null in JSON
    "Array(784).fill(5)": "between 0 and 1",
    "Array(784).fill('7')": "other than numbers",
    "'x'.repeat(100000)": "not a list of 784 numbers",
    "Array(20000).fill(0.25)": "20000 values",
}
HUGE_FIELDS = ["'x'.repeat(10 * 2 ** 20)", "Array(2621440).fill(0.25)"]  # 10 MB messages


def server_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def forging_page(browser, server):
    hostile = new_page(browser)
    hostile.add_init_script(f"({FORGE})()")
    hostile.goto(server)
    pad(hostile)
    body_has(hostile, BLANK_PAD, 30_000)
    return hostile


def test_a_forged_drawing_is_refused_and_others_keep_working(browser, server):
    hostile = forging_page(browser, server)
    for forged, reason in FORGED_FIELDS.items():
        hostile.get_by_role("button", name="Clear", exact=True).click()
        hostile.evaluate(f"() => {{ window.__forged = {forged}; }}")
        draw(hostile, vertical_stroke())
        body_has(hostile, "This drawing was not read", 30_000)
        hostile.wait_for_function(f"() => document.body.innerText.includes({reason!r})", timeout=30_000)
        assert "Prediction: 1" in hostile.inner_text("body")  # the browser's own reading stays
    hostile.close()
    # A 10 MB message is over the websocket's limit (server.maxMessageSize): the connection
    # refuses it before Streamlit parses it, and the server does not grow with each try.
    rss = [server_rss_mb(server.pid)]
    for forged in HUGE_FIELDS * 2:
        hostile = forging_page(browser, server)
        hostile.evaluate(f"() => {{ window.__forged = {forged}; }}")
        draw(hostile, vertical_stroke())
        body_has(hostile, "Prediction: 1", 30_000)  # the pad still reads it, in the browser
        time.sleep(3)  # the message goes out after the stroke; a state to wait on is not sent back
        hostile.close()
        rss.append(server_rss_mb(server.pid))
    assert rss[-1] - rss[0] < 40, rss
    other = new_page(browser)
    other.goto(server)
    pad(other)
    body_has(other, BLANK_PAD, 30_000)
    draw(other, vertical_stroke())
    assert prediction(other) == "Prediction: 1"
    body_has(other, "Why this prediction", 30_000)  # the server read this one
    other.close()


def short_run(page, number: int) -> None:
    """Press Train with one epoch and wait until run `number` has ended. Waits on states only:
    the run is in Compare runs (drawn after Train in the same rerun, so Train is disabled by
    then if the run still goes), then Train is enabled again."""
    set_slider(page, "epochs", "Home", "1")
    page.get_by_role("button", name="Train", exact=True).click()
    body_has(page, f"Run {number}", 120_000)
    page.get_by_role("button", name="Train", exact=True).and_(
        page.locator("button:enabled")).wait_for(timeout=300_000)
    body_has(page, "finished", 30_000)


def test_compare_runs_and_look_inside_the_network(browser, server):
    page = new_page(browser)
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(server)
    pad(page)
    body_has(page, BLANK_PAD, 30_000)
    short_run(page, 1)
    lr = page.evaluate("() => new URLSearchParams(location.search).get('lr')")
    page.locator(".st-key-hp_lr input").focus()
    page.keyboard.press("ArrowRight")  # another learning rate
    page.wait_for_function("lr => new URLSearchParams(location.search).get('lr') !== lr", arg=lr)
    short_run(page, 2)
    text = page.inner_text("body")
    for heading in ("Compare runs", "Confusion matrix", "Misclassified", "First-layer weights",
                    "Share settings by link"):
        assert heading in text, heading
    page.locator(".st-key-confusion .js-plotly-plot .heatmaplayer").wait_for(timeout=30_000)
    draw(page, vertical_stroke())
    body_has(page, "Why this prediction", 30_000)
    body_has(page, "first hidden layer's", 30_000)
    page.set_viewport_size({"width": 1400, "height": 5200})  # the whole page in one picture
    time.sleep(2)
    shot(page, "compare-and-inside")
    link = page.locator("[data-testid=stCode]").inner_text().strip()
    assert "lr=" in link and "epochs=1" in link
    fresh = new_page(browser)
    fresh.goto(link)
    pad(fresh)
    body_has(fresh, BLANK_PAD, 30_000)
    assert fresh.locator(".st-key-hp_epochs input").input_value() == "1"
    assert fresh.locator(".st-key-hp_lr").inner_text() == page.locator(".st-key-hp_lr").inner_text()
    fresh.close()
    page.close()


def test_draw_label_teach_and_the_drawing_is_read_as_its_label(page, tmp_path):
    """A 1 with a long flag, as many Europeans write it, is read as 7; labelled and taught, it
    is read as 1. The examples also go out as a zip and come back in."""
    from bench.handwriting import strokes
    body_has(page, BLANK_PAD, 20_000)
    (path,), _ = strokes("1", "flag", writer=1, sample=0)
    draw(page, [tuple(p) for p in path])
    assert prediction(page) == "Prediction: 7"
    page.locator(".st-key-label_1 button").click()
    body_has(page, "Added as a 1", 10_000)
    body_has(page, "(1 of at most 500)", 10_000)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download examples (.zip)").click()
    saved = tmp_path / "examples.zip"
    download.value.save_as(saved)
    page.get_by_role("button", name="Clear all").click()
    body_has(page, "(0 of at most 500)", 10_000)
    assert page.locator("input[type=file]").count() == 1  # the checkpoint's; examples' on request
    page.locator(".st-key-examples_upload_open label").click()
    page.locator(".st-key-examples_zip_0 input[type=file]").set_input_files(str(saved))
    body_has(page, "Added 1 examples from examples.zip", 20_000)
    page.get_by_role("button", name="Teach", exact=True).click()
    body_has(page, "Before and after", 60_000)
    body_has(page, "Prediction: 1", 20_000)  # the same drawing, now read by the taught model
    body_has(page, "MNIST test accuracy", 10_000)
    page.evaluate("() => window.scrollTo(0, 0)")
    shot(page, "taught")
