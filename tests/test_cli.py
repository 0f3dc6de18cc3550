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
