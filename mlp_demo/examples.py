"""The examples format, owned here: an `image,label` CSV naming image files, on disk or
beside them in a zip (what the app downloads, with 28x28 PNGs). `python -m mlp_demo teach
--examples` reads either; the app reads an uploaded zip. Both go through one row reader and
one image rule, and raise one error type. An upload is untrusted: every size is bounded
before anything is decompressed or decoded, and nothing is written to disk.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .drawing import preprocess
from .teach import MAX_EXAMPLES

CSV_NAME = "examples.csv"
MAX_ZIP_BYTES = 4 * 2**20  # 500 PNGs of 28x28 are ~150 KB
MAX_MEMBER_BYTES = 64 * 2**10  # a 28x28 PNG is at most ~3 KB; examples.csv ~10 KB
MAX_CSV_BYTES = 2**20  # 500 rows of paths fit many times over
MAX_IMAGE_BYTES = 32 * 2**20  # a photo of a digit on disk
MAX_IMAGE_PIXELS = 4096 * 4096  # a photo is fine; a decompression bomb is not
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


def read_examples(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """An examples file on disk: the CSV (image paths absolute or relative to its folder) or
    the app's zip -> uint8 images (N, 28, 28), labels (N,) and the images' names."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".zip":
            if path.stat().st_size > MAX_ZIP_BYTES:
                raise ExamplesError(f"{path} is larger than an examples zip can be "
                                    f"({MAX_ZIP_BYTES // 2**20} MB)")
            images, labels, names = _read_zip(path.read_bytes())
        else:
            if path.stat().st_size > MAX_CSV_BYTES:
                raise ExamplesError(f"{path} is larger than an examples file can be (1 MB)")
            rows = read_rows(path.read_bytes(), str(path))
            images = [_read_image(lambda name: _read_file(path.parent, name), name, where)
                      for name, _, where in rows]
            labels, names = [label for _, label, _ in rows], [name for name, _, _ in rows]
    except OSError as e:
        raise ExamplesError(f"cannot read {path}: {e.strerror or e}") from None
    return torch.from_numpy(np.stack(images)), torch.tensor(labels), names


def read_zip(data: bytes) -> tuple[list[np.ndarray], list[int]]:
    """An examples zip's bytes (an upload) -> uint8 28x28 images and labels; ExamplesError if
    anything in it is missing, oversized, not an image, blank, or has a label other than 0-9."""
    images, labels, _ = _read_zip(data)
    return images, labels


def read_rows(csv_bytes: bytes, source: str) -> list[tuple[str, int, str]]:
    """The one reader of the `image,label` table: (image name, label, where) per row, after
    checking the header, the count and every label."""
    text = csv_bytes.decode("utf-8", "replace")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip().lower() for c in rows[0]] != ["image", "label"]:
        raise ExamplesError(f"{source}: the first row must be the header 'image,label'")
    if len(rows) < 2:
        raise ExamplesError(f"{source} holds no examples")
    if len(rows) - 1 > MAX_EXAMPLES:
        raise ExamplesError(f"{source} lists {len(rows) - 1} examples; at most {MAX_EXAMPLES}")
    found = []
    for number, row in enumerate(rows[1:], start=2):
        where = f"{source}, row {number}"
        if len(row) != 2 or row[1].strip() not in tuple("0123456789"):
            raise ExamplesError(f"{where}: expected 'image,label' with a label from 0 to 9")
        found.append((row[0].strip(), int(row[1].strip()), where))
    return found


def _read_zip(data: bytes) -> tuple[list[np.ndarray], list[int], list[str]]:
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
        rows = read_rows(_read_member(zf, members, CSV_NAME), CSV_NAME)
        images = [_read_image(lambda name: _read_member(zf, members, name), name, where)
                  for name, _, where in rows]
    return images, [label for _, label, _ in rows], [name for name, _, _ in rows]


def _read_member(zf: zipfile.ZipFile, members: dict, name: str) -> bytes:
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


def _read_file(folder: Path, name: str) -> bytes:
    path = Path(name) if Path(name).is_absolute() else folder / name
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise ExamplesError(f"{name[:80]} is larger than an example image can be")
    return path.read_bytes()


def _read_image(read, name: str, where: str) -> np.ndarray:
    """One example's image -> uint8 28x28. A 28x28 greyscale image is taken as it is (the
    app's own download); any other (a photo, a scan) is made the MNIST way (drawing.preprocess).
    The size the header declares is checked before any pixel is decoded."""
    try:
        with Image.open(io.BytesIO(read(name))) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise ExamplesError(f"{where}: {name[:80]} is {im.width}x{im.height}, too large")
            if im.size == (SIDE, SIDE) and im.mode == "L":
                image = np.asarray(im, dtype=np.uint8).copy()
            else:
                field = preprocess(np.asarray(im.convert("RGBA" if "A" in im.getbands() else "L")))
                if field is None:
                    raise ExamplesError(f"{where}: {name[:80]} is blank (no digit found)")
                image = (field * 255).round().astype(np.uint8)
    except ExamplesError:
        raise
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise ExamplesError(f"{where}: there is no image {name[:80]!r}") from None
        raise ExamplesError(f"{where}: {name[:80]} is not a readable image") from None
    except (ValueError, Image.DecompressionBombError):
        raise ExamplesError(f"{where}: {name[:80]} is not a readable image") from None
    if image.max() == 0:
        raise ExamplesError(f"{where}: {name[:80]} is blank")
    return image
