import pytest
import torch

from mlp_demo.data import MNIST_MEAN, MNIST_STD, DataMissing, augment, batch_indices, load_mnist, split_mnist


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
