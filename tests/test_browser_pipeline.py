"""The browser's pipeline (mlp_demo/web/pipeline.js) against drawing.py and the model in
Python as the reference, in Chromium; and the static site `python -m mlp_demo web OUT/` writes,
served by a plain static server, drawn on with the mouse."""

import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from bench.browser import PAD_SELECTOR, REPO, body_has, draw, free_port, one, seven, zero
from mlp_demo import checkpoints, web
from mlp_demo.config import TrainConfig
from mlp_demo.drawing import predict_field, preprocess, read_drawing
from mlp_demo.model import MLP

pytestmark = pytest.mark.browser
DRAWINGS = 520

READ_IN_PAGE = """async (batch) => {
  const m = await import("./pad.js");
  window.__model = window.__model || m.readCheckpoint(await (await fetch("model.safetensors")).arrayBuffer());
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 280;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  return batch.map((d) => {
    m.paintStrokes(ctx, d.paths.map((points) => ({ width: d.width, points })));
    const r = m.read(window.__model, ctx.getImageData(0, 0, 280, 280).data, 280, 280);
    return { png: canvas.toDataURL("image/png"), field: r && Array.from(r.field), probs: r && r.probs };
  });
}"""

READ_THE_PAD = """async () => {
  const m = await import("./pad.js");
  const pad = document.querySelector("canvas.pad");
  const model = m.readCheckpoint(await (await fetch("model.safetensors")).arrayBuffer());
  const r = m.read(model, pad.getContext("2d").getImageData(0, 0, 280, 280).data, 280, 280);
  return { png: pad.toDataURL("image/png"), field: Array.from(r.field), probs: r.probs };
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The static site, served by Python's plain static file server."""
    out = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "mlp_demo", "web", str(out)], cwd=REPO, check=True,
                   capture_output=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(out)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    yield url, out
    server.terminate()
    server.wait(10)


@pytest.fixture
def page(browser, site):
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    page.goto(site[0])
    body_has(page, "Model: the shipped model, an MLP", 30_000)
    yield page
    page.close()


def generated_drawings(n: int) -> list[tuple[int, dict]]:
    """n drawings by bench.handwriting's generated writers, every style, plain and hard ones."""
    from bench.handwriting import hard_strokes, strokes, style_names
    found, writer = [], 0
    while len(found) < n:
        for digit, style in style_names():
            paths, width = (hard_strokes if writer % 2 else strokes)(digit, style, writer, 0)
            found.append((int(digit), {"width": float(width), "paths": [p.tolist() for p in paths]}))
        writer += 1
    return found[:n]


def python_reading(png: str, model) -> tuple[np.ndarray, np.ndarray]:
    field = preprocess(read_drawing(png))
    return field, predict_field(model, field)


def test_the_browsers_pipeline_reads_as_python_does(page):
    model, _ = checkpoints.load(checkpoints.DEFAULT_CHECKPOINT)
    drawings = generated_drawings(DRAWINGS)
    results = []
    for start in range(0, len(drawings), 40):
        results += page.evaluate(READ_IN_PAGE, [d for _, d in drawings[start:start + 40]])
    for points in (one(), zero(), seven()):  # and the mouse, on the pad itself
        page.get_by_role("button", name="Clear", exact=True).click()
        draw(page, points)
        results.append(page.evaluate(READ_THE_PAD))
    same, worst_prob, worst_field = 0, 0.0, 0.0
    for r in results:
        field, probs = python_reading(r["png"], model)
        assert (field is None) == (r["field"] is None)
        if field is None:
            continue
        worst_field = max(worst_field, float(np.abs(field.ravel() - np.array(r["field"])).mean()))
        worst_prob = max(worst_prob, float(np.abs(probs - np.array(r["probs"])).max()))
        same += int(probs.argmax() == np.argmax(r["probs"]))
    assert len(results) >= 500
    assert same >= 0.995 * len(results), (same, len(results))
    assert worst_prob <= 0.02 and worst_field <= 0.02, (worst_prob, worst_field)


def test_the_static_site_reads_a_one_a_zero_and_a_seven_with_the_mouse(page):
    for points, digit in ((one(), 1), (zero(), 0), (seven(), 7)):
        page.get_by_role("button", name="Clear", exact=True).click()
        draw(page, points)
        body_has(page, f"Prediction: {digit}", 10_000)
        assert page.locator(".announce").inner_text().startswith(f"The network reads {digit}")
    page.get_by_role("button", name="Undo", exact=True).click()
    body_has(page, "Draw a digit on the black pad", 10_000)
    box = page.locator(PAD_SELECTOR).bounding_box()
    assert box["y"] + box["height"] < 844  # the pad and the bars in a phone's first screen
    assert page.locator(".mlp-pad .bars").bounding_box()["y"] < 844


def test_a_model_file_opened_on_the_static_site_reads_as_in_python(page, tmp_path):
    config = TrainConfig(hidden=(24, 16), activation="gelu", seed=3)
    model = MLP(config).eval()
    path = checkpoints.save(tmp_path / "mine.safetensors", model, config, {}, 0.0)
    page.locator("#model-file").set_input_files(str(path))
    body_has(page, "Model: mine.safetensors, an MLP 784-24-16-10 (gelu)", 10_000)
    draw(page, seven())
    shown = page.locator(".mlp-pad .prediction").inner_text()
    _, probs = python_reading(page.locator(PAD_SELECTOR).evaluate("c => c.toDataURL('image/png')"), model)
    assert shown == f"Prediction: {probs.argmax()}"


def test_the_site_holds_the_apps_own_module_and_a_static_space_card(site):
    _, out = site
    assert (out / "pad.js").read_text() == web.module_js()  # one module, not a copy of it
    assert "sdk: static" in (out / "README.md").read_text()
    assert (out / "model.safetensors").read_bytes() == checkpoints.DEFAULT_CHECKPOINT.read_bytes()
