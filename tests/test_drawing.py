"""Preprocessing of drawn digits, checked against MNIST's own recipe and the shipped model."""

import base64

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mlp_demo import checkpoints
from mlp_demo.drawing import (
    MAX_DRAWING_BYTES,
    DrawingRefused,
    predict_image,
    preprocess,
    read_drawing,
    stroke_width,
    to_ink,
)

from helpers import drawn, png_data_url


def ink_box(field: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(field.max(1) > 0.1), np.flatnonzero(field.max(0) > 0.1)
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def centre_of_mass(field: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(field.shape)
    return (ys * field).sum() / field.sum(), (xs * field).sum() / field.sum()


@pytest.fixture(scope="module")
def shipped():
    return checkpoints.load(checkpoints.DEFAULT_CHECKPOINT)[0]


VARIANTS = {  # (box on a 280x280 canvas, brush width)
    "centred": ((90, 40, 190, 240), 20),
    "off-centre small": ((10, 10, 50, 70), 6),
    "large": ((30, 5, 250, 275), 30),
    "thick": ((80, 40, 200, 240), 45),
    "thin": ((90, 40, 190, 240), 3),
    "bottom right": ((200, 170, 270, 270), 12),
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("digit", ["0", "1", "7"])
def test_digits_are_fitted_and_centred_the_mnist_way(variant, digit):
    box, width = VARIANTS[variant]
    field = preprocess(drawn(digit, box, width))
    assert field.shape == (28, 28) and field.dtype == np.float32
    assert 0 <= field.min() and field.max() == pytest.approx(1, abs=0.01)
    assert max(ink_box(field)) in (19, 20, 21)  # longer side fitted into 20 pixels
    cy, cx = centre_of_mass(field)
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1
    assert 1.6 <= stroke_width(field > 0.4) <= 4.0  # MNIST-like strokes, whatever the brush


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("digit", ["0", "1", "7"])
def test_shipped_model_reads_drawn_digits(shipped, variant, digit):
    box, width = VARIANTS[variant]
    probs, _ = predict_image(shipped, drawn(digit, box, width))
    assert int(probs.argmax()) == int(digit), probs.round(2)


def test_blank_and_nearly_blank_canvases_are_no_digit(shipped):
    blank = np.zeros((280, 280), np.uint8)
    speck = blank.copy()
    speck[100:102, 100:102] = 255
    transparent = np.zeros((280, 280, 4), np.uint8)
    for image in (blank, speck, transparent, np.full((280, 280, 3), 255, np.uint8)):
        assert preprocess(image) is None
        assert predict_image(shipped, image) == (None, None)


def test_colour_and_polarity_do_not_matter():
    grey = drawn("7")
    rgba_canvas = np.zeros((280, 280, 4), np.uint8)  # white ink on a transparent background
    rgba_canvas[..., :3], rgba_canvas[..., 3] = 255, grey
    dark_on_light = np.stack([255 - grey] * 3, axis=2)  # a pen on paper, as RGB
    reference = preprocess(grey)
    for image in (rgba_canvas, dark_on_light):
        assert np.abs(preprocess(image) - reference).max() < 1e-5
    assert np.abs(to_ink(dark_on_light) - grey / 255).max() < 1e-6


def test_stroke_width_is_measured():
    for width in (4, 10, 24):
        mask = drawn("1", width=width) > 127
        assert stroke_width(mask) == pytest.approx(width, rel=0.25)


def _on_canvas(digit: torch.Tensor, scale: float, top: int, left: int, morph: int = 0) -> np.ndarray:
    """A real MNIST digit enlarged, optionally thickened (+) or thinned (-), placed on a canvas."""
    up = F.interpolate(digit[None, None].float(), scale_factor=scale, mode="bilinear")
    if morph:
        k = 2 * abs(morph) + 1
        up = F.max_pool2d(up, k, 1, abs(morph)) if morph > 0 else -F.max_pool2d(-up, k, 1, -morph)
    canvas = np.zeros((280, 280), np.float32)
    h, w = up.shape[2:]
    canvas[top:top + h, left:left + w] = up[0, 0, :280 - top, :280 - left].numpy()
    return canvas.clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("name, scale, top, left, morph", [
    ("as drawn, 10x", 10, 0, 0, 0),
    ("small, off-centre", 3, 10, 180, 0),
    ("thick", 6, 40, 40, 6),
    ("thin", 9, 10, 10, -3),
    ("tiny and bold", 2, 100, 100, 2),
])
def test_transformed_test_digits_are_still_recognised(real_raw, shipped, name, scale, top, left, morph):
    _, _, test_x, test_y = real_raw
    picked = range(0, 10000, 50)  # 200 digits, all classes
    correct = sum(int(predict_image(shipped, _on_canvas(test_x[i], scale, top, left, morph))[0]
                      .argmax()) == int(test_y[i]) for i in picked)
    assert correct / len(picked) >= 0.95, name


def test_any_image_gives_a_field_or_no_digit_never_an_error():
    """Noise, lines, blocks, dots and degenerate shapes: 28x28 in [0, 1], or None."""
    rng = np.random.default_rng(0)
    images = [np.zeros((1, 1), np.uint8), np.full((1, 1), 255, np.uint8),
              np.eye(1500, dtype=np.uint8) * 255, np.full((3000, 5), 255, np.uint8)]
    for _ in range(150):
        h, w = rng.integers(1, 400, 2)
        image = np.zeros((h, w), np.uint8)
        kind = rng.integers(4)
        if kind == 0:
            image = rng.integers(0, 256, (h, w)).astype(np.uint8)
        elif kind == 1:
            image[rng.integers(h), :] = 255
        elif kind == 2:
            image[rng.integers(h):, rng.integers(w):] = 255
        else:
            image[rng.integers(h), rng.integers(w)] = 255
        images.append(image)
    for image in images:
        field = preprocess(image)
        assert field is None or (field.shape == (28, 28) and 0 <= field.min() and field.max() <= 1)


# ---- what the browser sends: the pad's PNG, bounded before it is decoded

def test_the_pads_png_is_read_at_any_device_pixel_ratio():
    for ratio in (1, 2, 3):
        size = 280 * ratio
        image = read_drawing(png_data_url(Image.fromarray(drawn("1", size=size)).convert("RGBA")))
        assert image.shape == (size, size, 4)
    assert read_drawing(None) is None


def test_a_decompression_bomb_is_refused_before_decoding(monkeypatch):
    """12000x12000 of black compresses to a few hundred KB and would decode to 576 MB."""
    bomb = png_data_url(Image.new("L", (12000, 12000)))
    decoded = []
    monkeypatch.setattr(Image, "open", lambda *a, **k: decoded.append(1))
    with pytest.raises(DrawingRefused, match="12000x12000"):
        read_drawing(bomb)
    assert not decoded


@pytest.mark.parametrize("data_url", [
    "data:image/jpeg;base64,/9j/4AAQ", "javascript:alert(1)", 42, "data:image/png;base64,!!!!",
    "data:image/png;base64," + base64.b64encode(b"GIF89a" + bytes(40)).decode(),
    "data:image/png;base64," + "A" * (MAX_DRAWING_BYTES * 2),
])
def test_anything_but_a_pad_sized_png_is_refused(data_url):
    with pytest.raises(DrawingRefused):
        read_drawing(data_url)


def test_a_png_whose_header_lies_about_its_size_is_refused():
    real = base64.b64decode(png_data_url(Image.new("L", (100, 100)))[22:])
    forged = real[:16] + (50).to_bytes(4, "big") + (50).to_bytes(4, "big") + real[24:]
    with pytest.raises(DrawingRefused):
        read_drawing("data:image/png;base64," + base64.b64encode(forged).decode())
