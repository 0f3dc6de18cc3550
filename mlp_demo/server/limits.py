"""The public server's limits, and its run slots and queue: what keeps one visitor from
stalling, filling or knocking over the app for everyone else.

Each limit is an environment variable (MLP_DEMO_*) with a default that fits a free CPU
Space (2 vCPU, 16 GB). The app and its jobs read them; the CLI, on one's own machine, does not.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from ..config import TrainConfig


@dataclass(frozen=True)
class Limits:
    # A checkpoint holds 4 bytes per parameter: 4,000,000 parameters are a 16 MB file, which
    # fits .streamlit/config.toml's maxUploadSize, so every model trained here can be uploaded back.
    max_params: int = 4_000_000
    max_run_seconds: int = 600  # a run then stops itself and keeps its weights
    min_batch_size: int = 16  # batch 1 is ~100x slower per image than 256
    max_jobs: int = 2  # runs training at once; more wait in the queue
    max_queue: int = 64  # runs waiting; beyond that Train says the server is full
    session_ttl_s: int = 150  # a tab unheard of this long is gone: its run stops, it leaves the queue
    store_max_files: int = 200  # saved and uploaded models, all visitors together
    store_max_mb: int = 1000
    session_max_files: int = 10  # per visitor (browser session)
    session_max_mb: int = 100
    max_runs: int = 8  # runs a tab keeps for Compare runs; each holds at most max_params weights
    # Class boards (classes.py), kept in the database.
    max_classes: int = 50  # classes alive at once on this server
    class_max_students: int = 300
    class_max_runs: int = 3000
    student_max_runs: int = 50
    class_lifetime_s: int = 12 * 3600  # then the class closes and its data is deleted
    classes_max_mb: int = 200  # every board's entries together
    # A class's handwriting set: 784 bytes a drawing, so 2,000 are 1.5 MB, scored in ~10 ms.
    class_handwriting_per_student: int = 50
    class_handwriting_max: int = 2000

    @classmethod
    def from_env(cls, env) -> Limits:
        """Defaults, overridden by MLP_DEMO_<FIELD> (e.g. MLP_DEMO_MAX_PARAMS=2000000) in env,
        the environment as settings.Settings reads it."""
        values = {}
        for f in dataclasses.fields(cls):
            raw = env.get(variable(f.name))
            if raw is None:
                continue
            try:
                values[f.name] = int(raw.replace("_", ""))
            except ValueError:
                raise ValueError(f"{variable(f.name)}={raw!r} is not a whole number") from None
            if values[f.name] < 1:
                raise ValueError(f"{variable(f.name)} must be at least 1, not {raw}")
        return cls(**values)

    def problems(self, config: TrainConfig) -> list[str]:
        """Where a (valid) config exceeds this server's limits, each with the fix."""
        found = []
        if config.n_params() > self.max_params:
            found.append(f"this model has {config.n_params():,} parameters; this server trains at "
                         f"most {self.max_params:,} ({variable('max_params')}): use fewer or "
                         "narrower layers")
        if config.batch_size < self.min_batch_size:
            found.append(f"batch size must be at least {self.min_batch_size} on this server "
                         f"({variable('min_batch_size')})")
        return found

    def help(self) -> str:
        """One line for the sidebar's help texts."""
        return (f"This server allows at most {self.max_params:,} parameters per model, "
                f"{self.max_run_seconds // 60} min per run ({self.max_run_seconds} s), batches of "
                f"{self.min_batch_size} or more, {self.max_jobs} runs at once and one run per tab.")


def variable(field_name: str) -> str:
    return "MLP_DEMO_" + field_name.upper()


def available_cpus() -> int:
    """CPUs this process may really use: its affinity mask, capped by a cgroup CPU quota
    (a container's --cpus), which os.cpu_count() ignores."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cpus, math.ceil(quota)) if quota else cpus)


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota in CPUs (cgroup v2 cpu.max, else v1 cfs), or None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


@functools.cache
def configure_threads() -> int:
    """Set torch's thread count once per process, from the CPUs really available. Setting it
    inside a training thread would change the default for every thread created after it."""
    import torch

    threads = available_cpus()
    torch.set_num_threads(threads)
    return threads


class Guesses:
    """Wrong class codes (and forged seat tokens), counted per client for this whole server
    process: a reload does not start a client's count again, and the board view counts too. A
    client is the hall proxy's visitor cookie, else the connection's address, else the tab. A cap
    for the whole server stops many clients guessing together (a 44-bit code space needs
    billions of guesses; this allows a few hundred a minute)."""

    def __init__(self, tries: int = 5, window_s: float = 60.0, server_tries: int = 300,
                 max_clients: int = 10_000, clock=time.monotonic):
        self.tries, self.window_s, self.max_clients, self.clock = tries, window_s, max_clients, clock
        self.lock = threading.Lock()
        self.wrong: dict[str, deque] = {}
        self.everyone: deque = deque(maxlen=server_tries)

    def allowed(self, client: str) -> bool:
        with self.lock:
            recent = self._recent(client)
            server_full = (len(self.everyone) == self.everyone.maxlen
                           and self.clock() - self.everyone[0] < self.window_s)
            return not server_full and (recent is None or len(recent) < self.tries)

    def failed(self, client: str) -> None:
        with self.lock:
            self.everyone.append(self.clock())
            recent = self._recent(client)
            if recent is None:
                if len(self.wrong) >= self.max_clients:  # bounded: the oldest count goes
                    self.wrong.pop(next(iter(self.wrong)))
                recent = self.wrong[client] = deque(maxlen=self.tries)
            recent.append(self.clock())

    def _recent(self, client: str) -> deque | None:  # with self.lock held
        recent = self.wrong.get(client)
        while recent and self.clock() - recent[0] >= self.window_s:
            recent.popleft()
        if recent is not None and not recent:
            del self.wrong[client]
            return None
        return recent


ONE_RUN_A_TAB = "this tab already has a run training or queued: stop it first"


class Busy(RuntimeError):
    """A run cannot be queued: this tab already has one, or the queue is full."""


class RunQueue:
    """The server's run slots and the fair (first come, first served) queue behind them, and
    the heartbeats that tell which visitors are still there. One lock guards all of it; the
    app holds one instance per process.

    A visitor is a browser session, named by an id the app keeps in its session state. Runs
    are TrainingJob-like: start(on_done), stop(), eta_seconds(), and a .visitor attribute.
    """

    def __init__(self, limits: Limits, clock=time.monotonic):
        self.limits, self.clock = limits, clock
        self.lock = threading.Lock()
        self.running: list = []
        self.waiting: deque = deque()
        self.last_seen: dict[str, float] = {}
        self._reaper: threading.Thread | None = None

    # -- visitors
    def touch(self, visitor: str) -> None:
        """A heartbeat: the visitor's page is open (called on every rerun and fragment run)."""
        with self.lock:
            self.last_seen[visitor] = self.clock()
        self._ensure_reaper()

    def is_present(self, visitor: str) -> bool:
        with self.lock:
            return self._present(visitor)

    def _present(self, visitor: str) -> bool:
        seen = self.last_seen.get(visitor)
        return seen is not None and self.clock() - seen <= self.limits.session_ttl_s

    def reap(self) -> list:
        """Stop the runs of visitors gone quiet, and drop them from the queue."""
        with self.lock:
            gone = {v for v in self.last_seen if not self._present(v)}
            for v in gone:
                del self.last_seen[v]
            dropped = [j for j in self.waiting if j.visitor in gone]
            for job in dropped:
                self.waiting.remove(job)
            stopped = [j for j in self.running if j.visitor in gone]
        for job in dropped:
            job.cancel("its tab was closed")
        for job in stopped:
            job.stop()
        return dropped + stopped

    def _ensure_reaper(self) -> None:
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._reap_forever, daemon=True,
                                            name="mlp_demo-reaper")
            self._reaper.start()

    def _reap_forever(self) -> None:
        while True:
            time.sleep(min(10, self.limits.session_ttl_s / 4))
            self.reap()

    # -- runs
    def submit(self, job) -> int:
        """Start the job if a slot is free, else queue it. Returns its place in the queue
        (0: started). Raises Busy if its visitor already has a run, or the queue is full."""
        with self.lock:
            self._refuse_a_second_run(job)
            if len(self.running) < self.limits.max_jobs:
                self._start(job)
                return 0
            if len(self.waiting) >= self.limits.max_queue:
                raise Busy(f"{len(self.waiting)} runs are already waiting, the most this server "
                           "queues; try again in a few minutes")
            self.waiting.append(job)
            return len(self.waiting)

    def _refuse_a_second_run(self, job) -> None:  # with self.lock held
        if any(j.visitor == job.visitor for j in (*self.running, *self.waiting)):
            raise Busy(ONE_RUN_A_TAB)

    def cancel(self, job) -> bool:
        """Take a job out of the queue (before it started); False if it was not waiting."""
        with self.lock:
            if job not in self.waiting:
                return False
            self.waiting.remove(job)
        job.cancel("stopped before it started")
        return True

    def _start(self, job) -> None:  # with self.lock held
        self.running.append(job)
        job.start(on_done=self._finished)

    def _finished(self, job) -> None:
        """Called by a job's own thread as it ends: hand its slot to the next in the queue."""
        with self.lock:
            if job in self.running:
                self.running.remove(job)
            while self.waiting and len(self.running) < self.limits.max_jobs:
                self._start(self.waiting.popleft())

    def position(self, job) -> int | None:
        """1 for the next to start; None when not waiting."""
        with self.lock:
            return self.waiting.index(job) + 1 if job in self.waiting else None

    def estimated_start(self, job) -> float | None:
        """Seconds until the job should start: each slot frees when its run's remaining steps
        at its current rate are done, and each run ahead in the queue takes its own estimate."""
        with self.lock:
            if job not in self.waiting:
                return None
            free_at = sorted(j.eta_seconds() for j in self.running)
            free_at += [0.0] * (self.limits.max_jobs - len(free_at))
            for ahead in list(self.waiting)[:self.waiting.index(job)]:
                free_at[0] += ahead.eta_seconds()
                free_at.sort()
            return free_at[0]

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return len(self.running), len(self.waiting)
