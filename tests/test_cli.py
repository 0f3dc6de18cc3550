"""The CLI as a user runs it: a subprocess, its exit status, its stdout and stderr."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import REPO, drawn


def cli(*args, root=None, cwd=REPO):
    env = {**os.environ, "MNIST_ROOT": str(root) if root else os.environ.get("MNIST_ROOT", "")}
    return subprocess.run([sys.executable, "-m", "mlp_demo", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_help_lists_every_option_with_its_default():
    out = " ".join(cli("train", "--help").stdout.split())
    for flag in ("--hidden", "--activation", "--dropout", "--augment", "--val-size", "--optimizer",
                 "--lr", "--momentum", "--nesterov", "--weight-decay", "--batch-size", "--epochs",
                 "--scheduler", "--label-smoothing", "--seed", "--device", "--out", "--json",
                 "--preset"):
        assert flag in out
    assert "(default: 512;" in out and "(default: 0.003;" in out and "(default: cosine)" in out


def test_train_evaluate_predict(tmp_path, tiny_root):
    ckpt = tmp_path / "tiny.safetensors"
    run = cli("train", "--hidden", "32", "--epochs", "2", "--val-size", "100", "--out", ckpt,
              "--json", root=tiny_root)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["status"] == "finished" and result["test_acc"] > 0.9 and ckpt.exists()

    run = cli("evaluate", ckpt, "--json", root=tiny_root)
    assert run.returncode == 0, run.stderr
    evaluation = json.loads(run.stdout.strip().splitlines()[-1])
    assert evaluation["test_accuracy"] == pytest.approx(result["test_acc"])
    assert len(evaluation["per_class_accuracy"]) == 10


def test_predict_reads_image_files_with_the_shipped_model(tmp_path):
    files = []
    for digit in "017":
        files.append(tmp_path / f"{digit}.png")
        Image.fromarray(drawn(digit)).save(files[-1])
    paper = tmp_path / "paper.png"  # dark ink on white, as photographed
    Image.fromarray(255 - drawn("7")).convert("RGB").save(paper)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(blank)
    run = cli("predict", "--json", *files, paper, blank)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.strip().splitlines()]
    assert [line["prediction"] for line in lines] == [0, 1, 7, 7, None]
    assert sum(lines[0]["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert lines[-1]["probabilities"] is None


def test_shipped_model_reaches_98_percent_on_the_real_test_set(real_raw):
    run = cli("evaluate", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1])["test_accuracy"] >= 0.98


@pytest.mark.parametrize("args, message", [
    (["train", "--lr", "50"], "lr must be between 1e-06 and 10, not 50"),
    (["train", "--hidden", "0"], "each hidden layer must have 1 to 4096 neurons"),
    (["train", "--device", "cuda"], "device 'cuda' is not available"),
    (["evaluate", "missing.safetensors"], "cannot read missing.safetensors"),
    (["evaluate", "app.py"], "not a safetensors checkpoint"),
    (["predict", "app.py"], "cannot read image app.py"),
    (["predict", "--checkpoint", "nope.safetensors", "app.py"], "cannot read nope.safetensors"),
])
def test_user_errors_are_one_line_without_traceback(args, message, tiny_root):
    if "cuda" in args and __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA")
    run = cli(*args, root=tiny_root)
    assert run.returncode == 2
    assert message in run.stderr and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("mlp_demo: error:")


def test_missing_data_is_a_clear_error(tmp_path):
    run = cli("train", "--epochs", "1", root=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "MNIST_ROOT" in run.stderr and "train-images-idx3-ubyte" in run.stderr


def test_diverging_run_exits_with_the_advice(tmp_path, tiny_root):
    run = cli("train", "--hidden", "32", "--optimizer", "sgd", "--lr", "10", "--momentum", "0.99",
              "--scheduler", "none", "--batch-size", "32",
              "--epochs", "3", "--val-size", "100", "--out", tmp_path / "x.safetensors", root=tiny_root)
    assert run.returncode == 2 and "lower the learning rate" in run.stderr
    assert "Traceback" not in run.stderr


def write_examples(folder, rows):
    """An examples CSV; rows of (file name, image array or None for none, label)."""
    lines = ["image,label"]
    for name, image, label in rows:
        if image is not None:
            Image.fromarray(image).save(folder / name)
        lines.append(f"{name},{label}")
    (folder / "examples.csv").write_text("\n".join(lines) + "\n")
    return folder / "examples.csv"


@pytest.fixture
def tiny_model(tmp_path, tiny_root):
    ckpt = tmp_path / "tiny.safetensors"
    run = cli("train", "--hidden", "32", "--epochs", "1", "--val-size", "100", "--out", ckpt,
              root=tiny_root)
    assert run.returncode == 0, run.stderr
    return ckpt


def test_teach_moves_the_examples_accuracy_up(tmp_path, tiny_root, tiny_model):
    shapes = [("1", (120, 30, 160, 250), 18), ("0", (80, 40, 200, 240), 16), ("7", (70, 40, 210, 240), 20)]
    rows = [(f"{d}-{i}.png", drawn(d, box=(x0 + 8 * i, y0, x1 + 8 * i, y1), width=w), label)
            for (d, (x0, y0, x1, y1), w), label in zip(shapes, (3, 5, 8)) for i in range(3)]
    examples = write_examples(tmp_path, rows)
    out = tmp_path / "taught.safetensors"
    run = cli("teach", "--checkpoint", tiny_model, "--examples", examples, "--out", out, "--json",
              "--steps", "120", root=tiny_root)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(result) == {"examples", "seconds", "examples_accuracy_before", "examples_accuracy_after",
                           "test_accuracy_before", "test_accuracy_after"}
    assert result["examples"] == 9
    assert result["examples_accuracy_after"] > result["examples_accuracy_before"]
    assert result["examples_accuracy_after"] == 1.0
    assert result["test_accuracy_after"] > 0.5  # replay keeps what it knew
    run = cli("predict", "--checkpoint", out, "--json", tmp_path / "7-0.png", root=tiny_root)
    assert json.loads(run.stdout.strip().splitlines()[-1])["prediction"] == 8


@pytest.mark.parametrize("bad, message", [
    (("missing.png", None, 1), "row 3: there is no image 'missing.png'"),
    (("garbage.png", "garbage", 1), "row 3: garbage.png is not a readable image"),
    (("blank.png", np.zeros((280, 280), np.uint8), 1), "row 3: blank.png is blank"),
    (("seven.png", drawn("7"), "x"), "row 3: expected 'image,label' with a label from 0 to 9"),
    (("seven.png", drawn("7"), "10"), "row 3: expected 'image,label' with a label from 0 to 9"),
])
def test_teach_refuses_a_bad_row_with_one_line(tmp_path, tiny_root, tiny_model, bad, message):
    name, image, label = bad
    if isinstance(image, str):
        (tmp_path / name).write_bytes(b"not an image at all")
        image = None
    examples = write_examples(tmp_path, [("one.png", drawn("1"), 1), (name, image, label)])
    out = tmp_path / "taught.safetensors"
    run = cli("teach", "--checkpoint", tiny_model, "--examples", examples, "--out", out,
              root=tiny_root)
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1 and message in run.stderr, run.stderr
    assert not out.exists()
