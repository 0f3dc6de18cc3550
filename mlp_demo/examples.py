"""A visitor's labelled digits as one zip: `examples.csv` (the CLI's `image,label` format)
beside the 28x28 PNGs it names. Unzipped, it is what `python -m mlp_demo teach --examples`
reads. An uploaded zip is untrusted: every size is bounded before anything is decompressed
or decoded, and nothing is written to disk.
"""

from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
from PIL import Image

from .teach import MAX_EXAMPLES

CSV_NAME = "examples.csv"
MAX_ZIP_BYTES = 4 * 2**20  # 500 PNGs of 28x28 are ~150 KB
MAX_MEMBER_BYTES = 64 * 2**10  # a 28x28 PNG is at most ~3 KB; examples.csv ~10 KB
SIDE = 28


class ExamplesError(ValueError):
    """An examples zip that cannot be used; the message says what is wrong."""


def to_zip(images: list[np.ndarray], labels: list[int]) -> bytes:
    """uint8 28x28 images and their labels -> the zip's bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        rows = io.StringIO()
        writer = csv.writer(rows, lineterminator="\n")
        writer.writerow(["image", "label"])
        for i, (image, label) in enumerate(zip(images, labels), start=1):
            name = f"{i:03d}_{label}.png"
            png = io.BytesIO()
            Image.fromarray(np.asarray(image, dtype=np.uint8), "L").save(png, "PNG")
            zf.writestr(name, png.getvalue())
            writer.writerow([name, label])
        zf.writestr(CSV_NAME, rows.getvalue())
    return out.getvalue()


def read_zip(data: bytes) -> tuple[list[np.ndarray], list[int]]:
    """An examples zip's bytes -> uint8 28x28 images and labels; ExamplesError if anything in
    it is missing, oversized, not a 28x28 image, or has a label other than 0-9."""
    if len(data) > MAX_ZIP_BYTES:
        raise ExamplesError(f"the zip is {len(data) / 2**20:.1f} MB; an examples zip is at most "
                            f"{MAX_ZIP_BYTES // 2**20} MB")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        members = {info.filename: info for info in zf.infolist() if not info.is_dir()}
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ExamplesError("this is not a zip file") from None
    if len(members) > MAX_EXAMPLES + 1:
        raise ExamplesError(f"the zip holds {len(members)} files; at most {MAX_EXAMPLES} examples")
    with zf:
        rows = list(csv.reader(io.StringIO(_read(zf, members, CSV_NAME).decode("utf-8", "replace"))))
        if not rows or [c.strip().lower() for c in rows[0]] != ["image", "label"]:
            raise ExamplesError(f"{CSV_NAME}'s first row must be the header 'image,label'")
        if len(rows) - 1 > MAX_EXAMPLES:
            raise ExamplesError(f"{CSV_NAME} lists {len(rows) - 1} examples; at most {MAX_EXAMPLES}")
        images, labels = [], []
        for number, row in enumerate(rows[1:], start=2):
            if len(row) != 2 or row[1].strip() not in tuple("0123456789"):
                raise ExamplesError(f"{CSV_NAME}, row {number}: expected 'image,label' with a "
                                    "label from 0 to 9")
            images.append(_read_image(_read(zf, members, row[0].strip()), f"row {number}"))
            labels.append(int(row[1].strip()))
    return images, labels


def _read(zf: zipfile.ZipFile, members: dict, name: str) -> bytes:
    info = members.get(name)
    if info is None:
        raise ExamplesError(f"the zip has no file {name[:80]!r}")
    if info.file_size > MAX_MEMBER_BYTES:
        raise ExamplesError(f"{name[:80]} is {info.file_size:,} bytes unpacked; too large")
    try:
        with zf.open(info) as f:
            data = f.read(MAX_MEMBER_BYTES + 1)  # the declared size could lie
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError) as e:
        raise ExamplesError(f"{name[:80]} cannot be unpacked ({type(e).__name__})") from None
    if len(data) > MAX_MEMBER_BYTES:
        raise ExamplesError(f"{name[:80]} is too large")
    return data


def _read_image(data: bytes, where: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            if im.size != (SIDE, SIDE):  # read from the header, before any pixel is decoded
                raise ExamplesError(f"{where}: the image is {im.width}x{im.height}, not 28x28")
            image = np.asarray(im.convert("L"), dtype=np.uint8).copy()
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        if isinstance(e, ExamplesError):
            raise
        raise ExamplesError(f"{where}: not a readable PNG image") from None
    if image.max() == 0:
        raise ExamplesError(f"{where}: the image is blank")
    return image
