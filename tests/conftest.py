"""Shared fixtures: a tiny MNIST written as real IDX files, and the real MNIST where present.
Helpers live in helpers.py; no test imports this file."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import torch

from bench.browser import CHROMIUM, FLAGS
from mlp_demo.config import TrainConfig
from mlp_demo.data import load_mnist, split_mnist

from helpers import make_tiny_mnist


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    return make_tiny_mnist(tmp_path_factory.mktemp("tiny_mnist"))


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
def real_raw():
    """The full MNIST from MNIST_ROOT. In CI (CI=true) its absence fails the test, not skips it."""
    root = os.environ.get("MNIST_ROOT")
    if not root or not (Path(root) / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI expects the full MNIST under MNIST_ROOT={root!r}")
        pytest.skip("the full MNIST is not available (set MNIST_ROOT)")
    return load_mnist(root, download=False)


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster on a free loopback port, run as the postgres user (it
    refuses root), in a folder outside pytest's private tmp (which postgres cannot enter);
    removed afterwards. In CI (CI=true) one that cannot start fails the test, else it skips."""
    def unavailable(reason):
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is needed in CI: {reason} (see .ci/run)")
        pytest.skip(f"PostgreSQL is not available: {reason}")
    initdb = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not initdb:
        unavailable("Debian's postgresql is not installed")
    if not shutil.which("runuser") or os.geteuid() != 0:
        unavailable("starting a cluster as the postgres user needs root and runuser")
    bin_dir, port = initdb[-1].parent, _free_port()
    folder = Path(tempfile.mkdtemp(prefix="mlp_demo_pg_", dir="/var/tmp"))
    shutil.chown(folder, "postgres", "postgres")
    data, log = folder / "data", folder / "server.log"

    def as_postgres(*command):
        return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, command)],
                              capture_output=True, text=True, timeout=120)
    try:
        steps = [(bin_dir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"),
                 (bin_dir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o",
                  f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")]
        for step in steps:
            done = as_postgres(*step)
            if done.returncode != 0:
                unavailable(f"{Path(str(step[0])).name} failed: {(done.stderr or done.stdout)[-300:]}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


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
