"""Real services for the tests and the benches, started on this machine and removed after:
a throwaway PostgreSQL cluster, a local Ray head, nginx. Each is a context manager that yields
where to reach it, and raises Unavailable (with the reason) when it cannot start here."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from .browser import free_port


class Unavailable(RuntimeError):
    """The service cannot start on this machine; the message says why."""


@contextlib.contextmanager
def postgres():
    """A PostgreSQL cluster on a free loopback port, run as the postgres user (it refuses
    root), in a folder outside pytest's private tmp (which postgres cannot enter). Yields the
    URL of its `postgres` database."""
    initdb = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not initdb:
        raise Unavailable("Debian's postgresql is not installed")
    if not shutil.which("runuser") or os.geteuid() != 0:
        raise Unavailable("starting a cluster as the postgres user needs root and runuser")
    bin_dir, port = initdb[-1].parent, free_port()
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
                raise Unavailable(f"{Path(str(step[0])).name} failed: "
                                  f"{(done.stderr or done.stdout)[-300:]}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


# Ray 2.60's `ray start` requires a token from every client; a head on the loopback, for a
# bench, goes without (its app processes get the same variable).
RAY_ENV = {"RAY_AUTH_MODE": "disabled"}


@contextlib.contextmanager
def ray_head(cpus: int = 2):
    """A local Ray head with cpus CPUs for workers (`ray start --head`); yields its address."""
    if shutil.which("ray") is None:
        raise Unavailable("ray is not installed (pip install -r requirements-cluster.txt)")
    port = free_port()
    done = subprocess.run(["ray", "start", "--head", f"--port={port}", f"--num-cpus={cpus}",
                           "--include-dashboard=false", "--disable-usage-stats"],
                          capture_output=True, text=True, timeout=180, env={**os.environ, **RAY_ENV})
    if done.returncode != 0:
        raise Unavailable(f"ray start failed: {(done.stderr or done.stdout)[-300:]}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(["ray", "stop", "--force"], capture_output=True, timeout=120,
                       env={**os.environ, **RAY_ENV})


@contextlib.contextmanager
def nginx(config: str):
    """nginx in the foreground with this config (its `listen` port is the caller's); yields
    its folder. The config's error log and pid file go there."""
    if shutil.which("nginx") is None:
        raise Unavailable("nginx is not installed (apt-get install nginx)")
    folder = Path(tempfile.mkdtemp(prefix="mlp_demo_nginx_"))
    (folder / "logs").mkdir()
    (folder / "nginx.conf").write_text(f"error_log {folder}/error.log;\npid {folder}/nginx.pid;\n"
                                       + config)
    proc = subprocess.Popen(["nginx", "-p", str(folder), "-c", str(folder / "nginx.conf"),
                             "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield folder
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def wait_for_health(url: str, timeout_s: float = 60, headers: dict | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            request = urllib.request.Request(f"{url}/_stcore/health", headers=headers or {})
            if urllib.request.urlopen(request, timeout=2).read() == b"ok":
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise Unavailable(f"{url} did not answer")
        time.sleep(0.3)
