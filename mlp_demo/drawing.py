"""A drawn or photographed digit -> the 28x28 input MNIST would have made of it.

MNIST's recipe (LeCun et al.): crop to the ink, fit the longer side into 20 pixels with
anti-aliasing, then place the centre of mass at the centre of a 28x28 field. We add one
step: drawn strokes come in any brush width, so the stroke width is brought to MNIST's
before shrinking, or a thin pen turns into faint grey dust and a fat one into a blob.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .data import BOX, FIELD, normalize
from .model import predict_proba

INK_THRESHOLD = 0.25  # of full intensity, after scaling the darkest-to-brightest range to [0, 1]
MIN_INK_FRACTION = 0.002  # less ink than this share of the canvas is "no digit"
WORK_SIZE = 4 * BOX
STROKE_WIDTH_IN_FIELD = 2.4  # typical MNIST stroke width, in pixels of the 28x28 field
MAX_RADIUS = WORK_SIZE // 8  # the most a stroke is thickened or thinned, in working pixels
# The pad is 280x280 CSS pixels; a browser sends it at up to 3x its device pixel ratio.
MAX_DRAWING_SIDE = 3 * 280
# A PNG can't be bigger than its raw RGBA pixels plus chunk overhead; deflate only shrinks.
MAX_DRAWING_BYTES = MAX_DRAWING_SIDE**2 * 4 + MAX_DRAWING_SIDE + 64 * 2**10
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class DrawingRefused(ValueError):
    """The browser sent something that is not a drawing of the pad's size."""


def read_drawing(data_url: str | None) -> np.ndarray | None:
    """The pad's PNG data URL -> an RGBA array, decoding nothing oversized: the length of the
    text and the width and height the PNG declares are checked before any pixel is decoded
    (a forged 12000x12000 PNG is 728 KB on the wire and 576 MB decoded). None for no drawing."""
    if data_url is None:
        return None
    prefix = "data:image/png;base64,"
    if not isinstance(data_url, str) or not data_url.startswith(prefix):
        raise DrawingRefused("the drawing is not a PNG image")
    encoded = data_url[len(prefix):]
    if len(encoded) > MAX_DRAWING_BYTES * 4 // 3 + 4:
        raise DrawingRefused("the drawing is larger than the pad can make")
    try:
        head = base64.b64decode(encoded[:32], validate=True)  # signature and IHDR: 24 bytes
    except (binascii.Error, ValueError):
        raise DrawingRefused("the drawing is not valid base64") from None
    if len(head) < 24 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise DrawingRefused("the drawing is not a PNG image")
    width, height = struct.unpack(">II", head[16:24])
    if not (1 <= width <= MAX_DRAWING_SIDE and 1 <= height <= MAX_DRAWING_SIDE):
        raise DrawingRefused(f"the drawing is {width}x{height} pixels; the pad makes at most "
                             f"{MAX_DRAWING_SIDE}x{MAX_DRAWING_SIDE}")
    try:
        with Image.open(io.BytesIO(base64.b64decode(encoded, validate=True)), formats=["PNG"]) as im:
            if im.size != (width, height):
                raise DrawingRefused("the drawing's size is inconsistent")
            return np.asarray(im.convert("RGBA"))
    except (OSError, ValueError, binascii.Error, Image.DecompressionBombError) as e:
        if isinstance(e, DrawingRefused):
            raise
        raise DrawingRefused("the drawing could not be decoded") from None


def read_field(values) -> np.ndarray | None:
    """The pad's 28x28 field as the browser sent it (784 numbers in [0, 1], row by row) ->
    a float32 (28, 28) array, checked before anything is built from it: its type and length
    first (a forged message can be 10 MB), then every value's type and range. None for none."""
    if values is None:
        return None
    if not isinstance(values, (list, tuple)):
        raise DrawingRefused("the drawing is not a list of 784 numbers")
    if len(values) != FIELD * FIELD:
        raise DrawingRefused(f"the drawing has {len(values)} values, not {FIELD * FIELD}")
    if not all(type(v) in (int, float) for v in values):  # no bools, strings, lists or None
        raise DrawingRefused("the drawing holds something other than numbers")
    field = np.asarray(values, dtype=np.float32).reshape(FIELD, FIELD)
    if not np.isfinite(field).all() or field.min() < 0 or field.max() > 1:
        raise DrawingRefused("the drawing's values must be between 0 and 1")
    return field


def to_ink(image: np.ndarray) -> np.ndarray:
    """Any greyscale, RGB or RGBA array -> float ink in [0, 1] on a 0 background."""
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 3 and a.shape[2] == 4 and a[..., 3].min() < a[..., 3].max():
        ink = a[..., 3]  # a canvas with a transparent background: what was painted is ink
    else:
        ink = a[..., :3].mean(axis=2) if a.ndim == 3 else a
        if np.median(np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]])) > ink.mean():
            ink = ink.max() - ink  # dark on light: the border is background, so invert
    low, high = float(ink.min()), float(ink.max())
    return (ink - low) / (high - low) if high > low else np.zeros_like(ink)


def stroke_width(mask: np.ndarray) -> float:
    """Mean width of the strokes in a binary mask: area / half the boundary length."""
    area = mask.sum()
    eroded = -F.max_pool2d(-torch.from_numpy(mask[None, None].astype(np.float32)), 3, 1, 1)
    boundary = area - eroded.sum().item()
    return 2 * area / boundary if boundary else float(max(mask.shape))


def preprocess(image: np.ndarray) -> np.ndarray | None:
    """Canvas or photo array -> 28x28 float image in [0, 1] (MNIST style), or None when blank."""
    steps = preprocess_steps(image)
    return None if steps is None else steps["centred"]


def preprocess_steps(image: np.ndarray) -> dict[str, np.ndarray] | None:
    """Each stage of preprocess(), for showing: the ink on the pad, cropped to the ink, fitted
    into 20x20 (strokes brought to MNIST's width), centred by mass in 28x28. None when blank."""
    ink = to_ink(image)
    mask = ink > INK_THRESHOLD
    if mask.sum() < max(4, MIN_INK_FRACTION * ink.size):
        return None
    # Work at 4x the final size: enough to measure and change strokes, and cheap. Shrinking
    # dims a thin line, so the ink is rescaled to full intensity afterwards.
    cropped = _crop_to_ink(ink)
    crop = _resize(cropped, WORK_SIZE, only_shrink=True)
    crop = _crop_to_ink(_normalise_stroke(crop / crop.max(), BOX / max(crop.shape)))
    small = _resize(crop, BOX)
    small = small / max(small.max(), 1e-6)
    return {"pad": ink, "cropped": cropped, "fitted": small, "centred": _centre_by_mass(small)}


def _resize(image: np.ndarray, longer_side: int, only_shrink: bool = False) -> np.ndarray:
    """Scale so the longer side is longer_side pixels, keeping the aspect ratio (anti-aliased)."""
    scale = longer_side / max(image.shape)
    if only_shrink and scale >= 1:
        return image
    h, w = (max(1, round(n * scale)) for n in image.shape)
    # Rows first, then columns, each sum in float64 stored as float32: Pillow's order and
    # precision, step for step, which mlp_demo/web/pipeline.js follows too.
    rows = (image.astype(np.float64) @ lanczos_weights(image.shape[1], w).T).astype(np.float32)
    return np.clip((lanczos_weights(image.shape[0], h) @ rows.astype(np.float64)).astype(np.float32), 0, 1)


def lanczos_weights(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in): each output pixel's weights over the input pixels, Pillow's Lanczos
    resampling (a 3-lobed windowed sinc, widened by the scale when shrinking) written out so
    that the browser's pipeline can compute the very same numbers."""
    scale = size_in / size_out
    stretch = max(scale, 1.0)
    support = 3.0 * stretch
    weights = np.zeros((size_out, size_in))
    for i in range(size_out):
        centre = (i + 0.5) * scale
        first, last = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), size_in)
        x = (np.arange(first, last) - centre + 0.5) / stretch
        k = np.where((x >= -3) & (x < 3), np.sinc(x) * np.sinc(x / 3), 0.0)
        weights[i, first:last] = k / k.sum() if k.sum() else k
    return weights


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    mask = ink > INK_THRESHOLD
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.ascontiguousarray(ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])


def _normalise_stroke(crop: np.ndarray, scale: float) -> np.ndarray:
    """Dilate or erode so the strokes end up about as wide as MNIST's after scaling."""
    width = stroke_width(crop > INK_THRESHOLD)
    target = STROKE_WIDTH_IN_FIELD / scale
    # Bounded: a filled blob or a photo of noise has no strokes to speak of.
    radius = int(np.clip(round((target - width) / 2), -MAX_RADIUS, MAX_RADIUS))
    if radius == 0:
        return crop
    pad = abs(radius)
    t = torch.from_numpy(np.pad(crop, pad))[None, None]
    if radius > 0:
        t = F.max_pool2d(t, 2 * pad + 1, 1, pad)
    else:  # erode, but never so far that a stroke vanishes
        t = -F.max_pool2d(-t, 2 * pad + 1, 1, pad)
        if (t > INK_THRESHOLD).sum() < 0.3 * (crop > INK_THRESHOLD).sum():
            return crop
    return t[0, 0].numpy()


def _centre_by_mass(small: np.ndarray) -> np.ndarray:
    h, w = small.shape
    ys, xs = np.indices(small.shape)
    mass = small.sum()
    cy, cx = (ys * small).sum() / mass, (xs * small).sum() / mass
    # Snapped to a thousandth before rounding: a symmetric stroke's centre falls on a half, and
    # float noise (summation order) must not decide which way it goes, here or in the browser.
    top = int(np.clip(round(round(FIELD / 2 - 0.5 - cy, 3)), 0, FIELD - h))
    left = int(np.clip(round(round(FIELD / 2 - 0.5 - cx, 3)), 0, FIELD - w))
    out = np.zeros((FIELD, FIELD), dtype=np.float32)
    out[top:top + h, left:left + w] = small
    return out


def predict_field(model, field: np.ndarray) -> np.ndarray:
    """The 10 softmax probabilities for a 28x28 field in [0, 1]: the server's own reading of
    what the browser preprocessed (it never takes the browser's probabilities)."""
    return predict_proba(model, normalize(torch.from_numpy(field)[None]))[0].numpy()


def predict_steps(model, image: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
    """(each preprocessing step, the 10 softmax probabilities) in one pass, or None when blank:
    the prediction and its explanation share one preprocessing of the drawing."""
    steps = preprocess_steps(image)
    if steps is None:
        return None
    return steps, predict_proba(model, normalize(torch.from_numpy(steps["centred"])[None]))[0].numpy()


def predict_image(model, image: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(10 softmax probabilities, the 28x28 image the model saw), or (None, None) when blank."""
    field = preprocess(image)
    if field is None:
        return None, None
    probs = predict_proba(model, normalize(torch.from_numpy(field)[None]))[0].numpy()
    return probs, field
