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
    (lambda t: t.update({"0.weight": torch.zeros(16, 100)}), r"expected F32 \[16, 784\]"),
    (lambda t: t.update({"0.bias": torch.zeros(16, dtype=torch.float64)}), "is \\('F64'"),
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


def crafted(path, metadata: dict, tensors=None):
    """A checkpoint file with the given metadata (values are JSON-encoded unless strings)."""
    meta = {"format": checkpoints.FORMAT, "config": json.dumps(CONFIG.to_dict())}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()})
    tensors = tensors if tensors is not None else MLP(CONFIG).state_dict()
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    return path


@pytest.mark.parametrize("metrics", [[], {"test_acc": "x"}, {"test_acc": float("nan")},
                                     {"test_acc": True}, {"evil": 1, "test_acc": 0.9}, "7"])
def test_metrics_keep_only_known_keys_with_finite_numbers(tmp_path, metrics):
    raw = json.dumps(metrics) if not isinstance(metrics, str) else metrics
    path = crafted(tmp_path / "m.safetensors", {"metrics": raw})
    info = checkpoints.read_info(path)
    assert info.metrics in ({}, {"test_acc": 0.9})
    assert checkpoints.load(path)[1].metrics == info.metrics


def test_huge_metadata_is_refused_before_it_is_parsed(tmp_path):
    path = crafted(tmp_path / "big.safetensors", {"padding": "x" * (2 * 2**20)})
    with pytest.raises(CheckpointError, match="header"):
        checkpoints.read_info(path)
    with pytest.raises(CheckpointError, match="header"):
        checkpoints.from_bytes(path.read_bytes())


def test_a_header_claiming_a_huge_model_is_refused_without_building_it(tmp_path, monkeypatch):
    """484 bytes that claim 6 x 4096 layers: checked against the header, nothing allocated."""
    huge = TrainConfig(hidden=(4096,) * 6)
    header = {"__metadata__": {"format": checkpoints.FORMAT, "config": json.dumps(huge.to_dict())},
              "0.weight": {"dtype": "F32", "shape": [4096, 784], "data_offsets": [0, 16]}}
    blob = json.dumps(header).encode()
    data = len(blob).to_bytes(8, "little") + blob + bytes(16)

    def never(*args, **kwargs):
        raise AssertionError("a model was built from an unchecked header")
    monkeypatch.setattr(checkpoints, "MLP", never)
    with pytest.raises(CheckpointError, match="parameters"):
        checkpoints.from_bytes(data, "huge", max_params=4_000_000)
    with pytest.raises(CheckpointError, match="does not match its settings"):
        checkpoints.from_bytes(data, "huge")  # the CLI has no cap, but the header is still checked


def test_tensor_bytes_must_tile_the_file(tmp_path):
    path = crafted(tmp_path / "ok.safetensors", {})
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-4])
    (tmp_path / "long.safetensors").write_bytes(data + b"1234")
    for name in ("cut", "long"):
        with pytest.raises(CheckpointError, match="truncated"):
            checkpoints.read_info(tmp_path / f"{name}.safetensors")


def test_deeply_nested_json_is_refused_not_a_crash(tmp_path):
    blob = b"[" * 50_000 + b"]" * 50_000
    with pytest.raises(CheckpointError):
        checkpoints.read_header(len(blob).to_bytes(8, "little") + blob)
    path = crafted(tmp_path / "nested.safetensors", {"config": "[" * 30_000 + "]" * 30_000})
    with pytest.raises(CheckpointError):
        checkpoints.read_info(path)


def test_non_finite_weights_are_never_saved(tmp_path):
    model = MLP(CONFIG)
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        checkpoints.save(tmp_path / "nan.safetensors", model, CONFIG, {}, 1.0)
    assert not list(tmp_path.iterdir())


def test_save_without_replace_never_overwrites(tmp_path, saved):
    _, path = saved
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        checkpoints.save(path, MLP(CONFIG.replace(seed=3)), CONFIG, {}, 1.0, replace=False)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_the_first_paints_shipped_model_is_the_checkpoints_one():
    from mlp_demo import checkpoints
    from mlp_demo.server import weights
    assert weights.SHIPPED == checkpoints.DEFAULT_CHECKPOINT  # weights.py names it without torch
