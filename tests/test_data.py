import dataclasses

import pytest
import torch

from mlp_demo.data import (
    MNIST_MEAN,
    MNIST_STD,
    NO_AUGMENTATION,
    Augmentation,
    DataMissing,
    affine_grid,
    augment,
    batch_indices,
    elastic_offsets,
    fit_to_box,
    load_mnist,
    split_mnist,
    vary_stroke,
)


def test_tiny_idx_files_load_through_torchvision(tiny_raw):
    train_x, train_y, test_x, test_y = tiny_raw
    assert train_x.shape == (1200, 28, 28) and train_x.dtype == torch.uint8
    assert test_x.shape == (300, 28, 28) and test_y.dtype == torch.int64
    assert set(train_y.tolist()) == set(range(10))


def test_missing_data_names_mnist_root_and_files(tmp_path):
    with pytest.raises(DataMissing) as e:
        load_mnist(str(tmp_path), download=False)
    assert "MNIST_ROOT" in str(e.value) and "train-images-idx3-ubyte" in str(e.value)
    assert str(tmp_path) in str(e.value)
    assert "could not download" in str(e.value) and "Error" not in str(e.value)  # plain words


def test_split_holds_out_a_seeded_validation_set(tiny_raw):
    a, b = split_mnist(*tiny_raw, val_size=200, seed=3), split_mnist(*tiny_raw, val_size=200, seed=3)
    assert len(a.train_x) == 1000 and len(a.val_x) == 200 and len(a.test_x) == 300
    assert torch.equal(a.val_x, b.val_x)
    assert len(split_mnist(*tiny_raw, val_size=0).val_x) == 0
    with pytest.raises(ValueError, match="val_size"):
        split_mnist(*tiny_raw, val_size=1200)


def test_batches_cover_every_index_once():
    batches = batch_indices(10, 4, torch.Generator().manual_seed(0), "cpu")
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))


def test_normalisation_constants_match_the_real_training_set(real_raw):
    pixels = real_raw[0].float() / 255
    assert pixels.mean().item() == pytest.approx(MNIST_MEAN, abs=1e-3)
    assert pixels.std().item() == pytest.approx(MNIST_STD, abs=1e-3)


def test_augmentation_moves_ink_but_keeps_it(tiny_raw):
    images = tiny_raw[0][:64]
    out = augment(images, torch.Generator().manual_seed(0))
    assert out.shape == (64, 28, 28) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    original = images.float() / 255
    assert not torch.allclose(out, original, atol=0.05)  # something changed
    ratio = out.sum((1, 2)) / original.sum((1, 2))
    assert ratio.min() > 0.4 and ratio.max() < 2.5  # digits are moved and thickened, not erased
    again = augment(images, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_every_transform_is_the_identity_at_zero_strength(tiny_raw):
    images = tiny_raw[0][:16]
    out = augment(images, torch.Generator().manual_seed(0), NO_AUGMENTATION)
    assert torch.allclose(out, images.float() / 255, atol=1e-5)
    g = torch.Generator().manual_seed(0)
    identity = torch.nn.functional.affine_grid(torch.eye(2, 3).expand(16, 2, 3), [16, 1, 28, 28],
                                               align_corners=False)
    assert torch.allclose(affine_grid(16, g, NO_AUGMENTATION, "cpu"), identity, atol=1e-6)
    assert torch.equal(elastic_offsets(16, g, 0.0, "cpu"), torch.zeros(16, 28, 28, 2))
    x = images.unsqueeze(1).float() / 255
    assert torch.equal(vary_stroke(x, g, 0.0), x)


STRENGTHS = {**dataclasses.asdict(Augmentation()), "aspect": 0.3}  # aspect is 0 for training


@pytest.mark.parametrize("name", list(STRENGTHS))
def test_each_transform_alone_changes_the_digits_within_range(tiny_raw, name):
    images = tiny_raw[0][:32]
    strength = dataclasses.replace(NO_AUGMENTATION, **{name: STRENGTHS[name]})
    out = augment(images, torch.Generator().manual_seed(1), strength)
    assert out.shape == (32, 28, 28) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    moved = (out - images.float() / 255).abs().amax((1, 2)) > 0.05
    assert moved.float().mean() >= 0.4  # most digits changed (stroke: half of them, by design)
    ratio = out.sum((1, 2)) / (images.float() / 255).sum((1, 2))
    assert ratio.min() > 0.3 and ratio.max() < 3  # ink kept, not erased or smeared everywhere


def test_slant_shears_rows_in_proportion_to_height():
    """Vertical bars, slanted by up to 0.3: rows 15 pixels apart move apart by up to 4.5 px,
    both ways."""
    bars = torch.zeros(64, 28, 28, dtype=torch.uint8)
    bars[:, 4:24, 13:15] = 255
    out = augment(bars, torch.Generator().manual_seed(0), dataclasses.replace(NO_AUGMENTATION, slant=0.3))
    cols = torch.arange(28.0)
    centre = (out * cols).sum(2) / out.sum(2).clamp_min(1e-6)  # (64, 28): each row's ink centre
    lean = centre[:, 6] - centre[:, 21]
    assert lean.abs().max() <= 0.3 * 15 + 0.5
    assert lean.min() < -2 and lean.max() > 2
    assert torch.allclose(out.sum((1, 2)), bars.float().sum((1, 2)) / 255, rtol=0.05)  # ink kept


def test_elastic_offsets_are_smooth_and_of_the_asked_size():
    offsets = elastic_offsets(64, torch.Generator().manual_seed(0), 2.0, "cpu") * (28 / 2)  # in px
    assert 0.8 < offsets.std().item() < 3.0
    neighbour_step = (offsets[:, 1:] - offsets[:, :-1]).abs().mean().item()
    assert neighbour_step < 0.25 * offsets.abs().mean().item()  # neighbours move together


def test_aspect_changes_the_width_and_keeps_the_height():
    bars = torch.zeros(64, 28, 28, dtype=torch.uint8)
    bars[:, 4:24, 10:18] = 255
    out = augment(bars, torch.Generator().manual_seed(0), dataclasses.replace(NO_AUGMENTATION, aspect=0.3))
    width = (out > 0.5).any(1).sum(1).float()  # columns with ink
    height = (out > 0.5).any(2).sum(1).float()
    assert width.min() < 7 and width.max() > 9  # narrower and wider than the 8 it was
    assert width.max() <= 8 * 1.35 + 1 and width.min() >= 8 / 1.35 - 1
    assert torch.all(height == 20)


def test_fit_to_box_fits_the_ink_into_20_pixels_centred_by_mass():
    x = torch.zeros(3, 1, 28, 28)
    x[0, 0, 2:8, 3:6] = 1.0  # small, in a corner
    x[1, 0, 1:27, 10:13] = 0.5  # too tall and dim
    fitted = fit_to_box(x)
    assert fitted.shape == x.shape and fitted.dtype == torch.float32
    assert 0 <= fitted.min() and torch.allclose(fitted.amax((1, 2, 3))[:2], torch.ones(2))
    pixels = torch.arange(28.0) + 0.5
    for image in fitted[:2, 0]:
        rows = torch.nonzero((image > 0.5).any(1)).flatten()
        assert 19 <= rows[-1] - rows[0] + 1 <= 21  # the longer side (the height) is 20 pixels
        mass = image.sum()
        assert abs((image.sum(1) @ pixels) / mass - 14) < 0.6
        assert abs((image.sum(0) @ pixels) / mass - 14) < 0.6
    assert torch.equal(fitted[2], x[2])  # a blank image stays blank


def test_fit_to_box_leaves_mnist_digits_about_as_they_are(real_raw):
    """MNIST's digits are already fitted (20 pixels, centred by mass): refitting them moves
    little, so refitting an unchanged example is nearly the identity."""
    images = real_raw[2][:64].unsqueeze(1).float() / 255
    assert (fit_to_box(images) - images).abs().mean() < 0.08  # resampling blurs a little
    out = augment(real_raw[2][:64], torch.Generator().manual_seed(0), NO_AUGMENTATION, refit=True)
    assert out.shape == (64, 28, 28) and (out - images[:, 0]).abs().mean() < 0.08
