"""The examples zip: what the app downloads it reads back, and a hostile zip is refused."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from mlp_demo.examples import MAX_MEMBER_BYTES, ExamplesError, read_zip, to_zip
from mlp_demo.teach import read_examples


def digit(value=200):
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 12:16] = value
    return image


def png(image) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.asarray(image)).save(out, "PNG")
    return out.getvalue()


def zipped(files: dict, compression=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_round_trip_keeps_images_and_labels():
    images = [digit(), np.rot90(digit()).copy(), digit(90)]
    data = to_zip(images, [1, 7, 1])
    read, labels = read_zip(data)
    assert labels == [1, 7, 1]
    assert all(np.array_equal(a, b) for a, b in zip(images, read))


def test_the_cli_reads_an_unzipped_download(tmp_path):
    with zipfile.ZipFile(io.BytesIO(to_zip([digit(), digit()], [1, 4]))) as zf:
        zf.extractall(tmp_path)
    images, labels, _ = read_examples(tmp_path / "examples.csv")
    assert labels.tolist() == [1, 4] and images.shape == (2, 28, 28)


@pytest.mark.parametrize("files, message", [
    ({"examples.csv": "image,label\na.png,3\n"}, "no file 'a.png'"),
    ({"notes.txt": "hi"}, "no file 'examples.csv'"),
    ({"examples.csv": "file,digit\na.png,3\n", "a.png": png(digit())}, "header"),
    ({"examples.csv": "image,label\na.png,12\n", "a.png": png(digit())}, "row 2"),
    ({"examples.csv": "image,label\na.png,3\n", "a.png": b"not a png"}, "not a readable PNG"),
    ({"examples.csv": "image,label\na.png,3\n", "a.png": png(np.zeros((40, 28), np.uint8))},
     "28x40, not 28x28"),
    ({"examples.csv": "image,label\na.png,3\n", "a.png": png(np.zeros((28, 28), np.uint8))}, "blank"),
])
def test_bad_zips_are_refused_with_a_message(files, message):
    with pytest.raises(ExamplesError, match=message):
        read_zip(zipped(files))


def test_not_a_zip_and_oversized_ones_are_refused_before_unpacking():
    with pytest.raises(ExamplesError, match="not a zip"):
        read_zip(b"PK\x03\x04 nonsense")
    with pytest.raises(ExamplesError, match="at most 4 MB"):
        read_zip(b"\0" * (5 * 2**20))
    bomb = zipped({"examples.csv": "image,label\na.png,3\n", "a.png": b"\0" * (50 * MAX_MEMBER_BYTES)})
    assert len(bomb) < 10_000  # small on the wire, 3 MB unpacked
    with pytest.raises(ExamplesError, match="too large"):
        read_zip(bomb)
    many = zipped({f"{i}.png": b"" for i in range(600)})
    with pytest.raises(ExamplesError, match="600 files"):
        read_zip(many)
