"""Shared fixtures: a tiny MNIST written as real IDX files, and the real MNIST where present.
Helpers live in helpers.py; no test imports this file."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import torch

from bench import services
from bench.browser import CHROMIUM, FLAGS
from mlp_demo.config import TrainConfig
from mlp_demo.data import load_mnist, split_mnist

from helpers import make_tiny_mnist


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    return make_tiny_mnist(tmp_path_factory.mktemp("tiny_mnist"))


@pytest.fixture(scope="session")
def app_mnist_root(tmp_path_factory) -> str:
    """What the app's servers in the browser tests train on: the real MNIST under MNIST_ROOT
    where it is there, else a synthetic one large enough for the Default preset (its 5,000
    validation images held out, 1,000 left to train on), so that Train from Default runs."""
    root = os.environ.get("MNIST_ROOT")
    if _holds_mnist(root):
        return root
    return str(make_tiny_mnist(tmp_path_factory.mktemp("app_mnist"), n_train=6000, n_test=1000))


@pytest.fixture(scope="session")
def tiny_raw(tiny_root):
    return load_mnist(str(tiny_root), download=False)


@pytest.fixture
def tiny_data(tiny_raw):
    return split_mnist(*tiny_raw, val_size=200, seed=0)


@pytest.fixture
def small_config() -> TrainConfig:
    return TrainConfig(hidden=(32,), epochs=1, batch_size=32, val_size=200, device="cpu")


@pytest.fixture(scope="session")
def real_root() -> str:
    """MNIST_ROOT, holding the full MNIST: for tests that need real handwriting (a run's live
    model reading a drawn 1). In CI (CI=true) its absence fails the test, not skips it."""
    root = os.environ.get("MNIST_ROOT")
    if not _holds_mnist(root):
        if os.environ.get("CI"):
            pytest.fail(f"CI expects the full MNIST under MNIST_ROOT={root!r}")
        pytest.skip("the full MNIST is not available (set MNIST_ROOT)")
    return root


@pytest.fixture(scope="session")
def real_raw(real_root):
    return load_mnist(real_root, download=False)


def _holds_mnist(root: str | None) -> bool:
    return bool(root) and (Path(root) / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def browser():
    expected = os.environ.get("CI") or os.environ.get("MLP_DEMO_BROWSER")
    if not Path(CHROMIUM).exists():
        if expected:
            pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (see .ci/run)")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster (bench.services.postgres), removed afterwards. In CI
    (CI=true) one that cannot start fails the test, else it skips."""
    try:
        with services.postgres() as url:
            yield url
    except services.Unavailable as e:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is needed in CI: {e} (see .ci/run)")
        pytest.skip(f"PostgreSQL is not available: {e}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty database of each kind the app supports."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'classes.sqlite3'}"
        return
    from sqlalchemy import create_engine, text
    server = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))  # a generated name, not input
    yield server.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
