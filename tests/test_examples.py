"""The examples format (examples.py owns it): what the app downloads reads back, in the app and
in the CLI, as a zip or unzipped; a hostile zip is refused."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from mlp_demo.examples import MAX_MEMBER_BYTES, ExamplesError, read_examples, read_zip, to_zip


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
    assert np.array_equal(images[0].numpy(), digit())  # a 28x28 greyscale image is used as it is


def test_the_cli_reads_the_zip_itself(tmp_path):
    (tmp_path / "examples.zip").write_bytes(to_zip([digit(), digit(90)], [1, 4]))
    images, labels, names = read_examples(tmp_path / "examples.zip")
    assert labels.tolist() == [1, 4] and np.array_equal(images[1].numpy(), digit(90))
    assert names == ["001_1.png", "002_4.png"]


def test_any_other_image_is_made_the_mnist_way(tmp_path):
    """A photo-sized digit (dark on light, 90x120) is cropped, fitted and centred into 28x28."""
    photo = np.full((120, 90), 255, np.uint8)
    photo[20:100, 40:52] = 0
    Image.fromarray(photo).save(tmp_path / "photo.png")
    (tmp_path / "examples.csv").write_text("image,label\nphoto.png,1\n")
    images, labels, _ = read_examples(tmp_path / "examples.csv")
    image = images[0].numpy()
    assert image.shape == (28, 28) and image[:4].max() == 0 and image.max() == 255  # inverted, fitted
    columns = image.sum(0)
    assert 12.5 < (columns * np.arange(28)).sum() / columns.sum() < 14.5  # centred by mass


def test_the_csv_and_the_zip_share_one_row_reader(tmp_path):
    (tmp_path / "examples.csv").write_text("image,label\na.png,12\n")
    with pytest.raises(ExamplesError, match="row 2"):
        read_examples(tmp_path / "examples.csv")
    with pytest.raises(ExamplesError, match="row 2"):
        read_zip(zipped({"examples.csv": "image,label\na.png,12\n", "a.png": png(digit())}))


@pytest.mark.parametrize("files, message", [
    ({"examples.csv": "image,label\na.png,3\n"}, "no file 'a.png'"),
    ({"notes.txt": "hi"}, "no file 'examples.csv'"),
    ({"examples.csv": "file,digit\na.png,3\n", "a.png": png(digit())}, "header"),
    ({"examples.csv": "image,label\na.png,12\n", "a.png": png(digit())}, "row 2"),
    ({"examples.csv": "image,label\na.png,3\n", "a.png": b"not a png"}, "not a readable image"),
    ({"examples.csv": "image,label\na.png,3\n", "a.png": png(np.zeros((40, 28), np.uint8))},
     "blank"),
    ({"examples.csv": "image,label\na.png,3\n", "a.png": png(np.zeros((5000, 4000), np.uint8))},
     "too large"),
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
