import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from mlp_demo import checkpoints
from mlp_demo.checkpoints import CheckpointError
from mlp_demo.config import TrainConfig
from mlp_demo.model import MLP

CONFIG = TrainConfig(hidden=(16, 8), activation="gelu")


@pytest.fixture
def saved(tmp_path):
    model = MLP(CONFIG)
    path = checkpoints.save(tmp_path / "m.safetensors", model, CONFIG, {"test_acc": 0.5}, 12.5)
    return model, path


def test_round_trip_rebuilds_the_model_from_the_file_alone(saved):
    model, path = saved
    loaded, info = checkpoints.load(path)
    assert info.config == CONFIG and info.metrics == {"test_acc": 0.5} and info.train_seconds == 12.5
    x = torch.randn(3, 784)
    assert torch.equal(loaded(x), model.eval()(x))
    assert not list(path.parent.glob("*.tmp"))


def test_a_crash_while_writing_leaves_no_file_under_the_final_name(tmp_path, monkeypatch, saved):
    _, path = saved
    before = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        checkpoints.save(path, MLP(CONFIG), CONFIG, {"test_acc": 0.9}, 1.0)
    with pytest.raises(OSError):
        checkpoints.save(tmp_path / "new.safetensors", MLP(CONFIG), CONFIG, {}, 1.0)
    assert path.read_bytes() == before
    assert not (tmp_path / "new.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_truncated_file_is_refused(saved):
    _, path = saved
    data = path.read_bytes()
    for cut in (4, 100, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated|too short|damaged"):
            checkpoints.load(path)


def test_pickle_files_are_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for name, write in [("evil.safetensors", lambda f: pickle.dump(Exploit(), f)),
                        ("evil.pt", lambda f: torch.save({"x": Exploit()}, f))]:
        path = tmp_path / name
        with open(path, "wb") as f:
            write(f)
        with pytest.raises(CheckpointError, match="not a safetensors"):
            checkpoints.load(path)
    assert not marker.exists()


def _tampered(path, tensors: dict, config=CONFIG):
    save_file(tensors, str(path), metadata={"format": checkpoints.FORMAT,
                                            "config": json.dumps(config.to_dict())})
    return path


@pytest.mark.parametrize("change, message", [
    (lambda t: t.pop("0.weight"), "does not match its settings"),
    (lambda t: t.update({"extra": torch.zeros(1)}), "does not match its settings"),
    (lambda t: t.update({"0.weight": torch.zeros(16, 100)}), r"expected float32 \(16, 784\)"),
    (lambda t: t.update({"0.bias": torch.zeros(16, dtype=torch.float64)}), "is torch.float64"),
    (lambda t: t["2.weight"].__setitem__((0, 0), float("nan")), "NaN or infinite"),
])
def test_keys_shapes_dtypes_and_finiteness_are_checked(tmp_path, change, message):
    tensors = {k: v.clone() for k, v in MLP(CONFIG).state_dict().items()}
    change(tensors)
    with pytest.raises(CheckpointError, match=message):
        checkpoints.load(_tampered(tmp_path / "t.safetensors", tensors))


def test_foreign_or_unreadable_metadata_is_refused(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not an mlp_demo checkpoint"):
        checkpoints.load(path)
    save_file({"w": torch.zeros(2)}, str(path), metadata={"format": checkpoints.FORMAT,
                                                          "config": '{"lr": 99}'})
    with pytest.raises(CheckpointError, match="unreadable settings: lr must be between"):
        checkpoints.load(path)
    with pytest.raises(CheckpointError, match="cannot read"):
        checkpoints.load(tmp_path / "missing.safetensors")


def test_listing_reads_metadata_and_skips_broken_files(tmp_path, saved):
    _, path = saved
    (tmp_path / "broken.safetensors").write_bytes(b"garbage")
    infos = checkpoints.list_checkpoints(tmp_path)
    assert [i.name for i in infos] == ["default", "m"] and infos[1].metrics["test_acc"] == 0.5


@pytest.mark.parametrize("name", ["", "../evil", "a/b", "default", ".hidden", "x" * 41, "spa ce"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(CheckpointError, match="not a usable name"):
        checkpoints.path_for_name(name)


def test_safe_names_stay_in_the_folder(tmp_path):
    assert checkpoints.path_for_name("my-mlp_2", tmp_path) == tmp_path / "my-mlp_2.safetensors"


def test_shipped_model_is_small_and_loads():
    model, info = checkpoints.load(checkpoints.DEFAULT_CHECKPOINT)
    assert checkpoints.DEFAULT_CHECKPOINT.stat().st_size < 5 * 2**20
    assert info.config.augment and info.metrics["test_acc"] >= 0.98
