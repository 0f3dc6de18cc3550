"""The server's limits, CPU detection, and the run queue (slots, fairness, heartbeats)."""

import re
import threading

import pytest

from mlp_demo import checkpoints
from mlp_demo.config import TrainConfig
from mlp_demo.server.jobs import TrainingJob
from mlp_demo.server.limits import Busy, Limits, RunQueue, available_cpus, cgroup_cpu_quota, variable

from helpers import REPO


def test_limits_come_from_the_environment_with_defaults():
    assert Limits.from_env({}) == Limits()
    limits = Limits.from_env({"MLP_DEMO_MAX_PARAMS": "1_000", "MLP_DEMO_MAX_JOBS": "3"})
    assert limits.max_params == 1000 and limits.max_jobs == 3
    with pytest.raises(ValueError, match="MLP_DEMO_MIN_BATCH_SIZE"):
        Limits.from_env({"MLP_DEMO_MIN_BATCH_SIZE": "lots"})
    assert variable("max_run_seconds") == "MLP_DEMO_MAX_RUN_SECONDS"


def test_limits_narrow_what_the_config_allows():
    limits = Limits()
    assert limits.problems(TrainConfig()) == []
    huge = TrainConfig(hidden=(4096,) * 6, batch_size=1).validate()  # valid for the CLI
    problems = limits.problems(huge)
    assert len(problems) == 2
    assert "parameters" in problems[0] and "MLP_DEMO_MAX_PARAMS" in problems[0]
    assert "batch size" in problems[1]
    assert "4,000,000 parameters" in limits.help()


def test_every_model_the_server_trains_can_be_uploaded_back():
    """The upload limit (read by Streamlit at launch) covers the largest checkpoint allowed."""
    toml = (REPO / ".streamlit" / "config.toml").read_text()
    upload_mb = int(re.search(r"^maxUploadSize = (\d+)", toml, re.M).group(1))
    largest = 8 + checkpoints.MAX_HEADER_BYTES + 4 * Limits().max_params
    assert largest <= upload_mb * 2**20
    assert re.search(r'^showErrorDetails = "none"', toml, re.M)


def test_available_cpus_honours_affinity_and_quota(tmp_path, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr("mlp_demo.server.limits.cgroup_cpu_quota", lambda: None)
    assert available_cpus() == 4
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {5})
    assert available_cpus() == 1
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr("mlp_demo.server.limits.cgroup_cpu_quota", lambda: 1.5)
    assert available_cpus() == 2


def test_cgroup_quota_is_read_from_v2_and_v1_files(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cgroup_cpu_quota(v1) == 2.0


class FakeJob:
    """What the queue needs of a job: start(on_done), stop(), cancel(), eta_seconds()."""

    def __init__(self, visitor, eta=10.0):
        self.visitor, self.eta, self.started, self.stopped, self.cancelled = visitor, eta, 0, 0, None
        self.on_done = None

    def start(self, on_done):
        self.started += 1
        self.on_done = on_done

    def stop(self):
        self.stopped += 1

    def cancel(self, reason):
        self.cancelled = reason

    def eta_seconds(self):
        return self.eta

    def finish(self):
        self.on_done(self)


def test_queue_starts_runs_in_order_as_slots_free():
    queue = RunQueue(Limits(max_jobs=2))
    jobs = [FakeJob(f"v{i}", eta=10 * (i + 1)) for i in range(5)]
    assert [queue.submit(j) for j in jobs] == [0, 0, 1, 2, 3]
    assert [j.started for j in jobs] == [1, 1, 0, 0, 0]
    assert queue.position(jobs[3]) == 2
    assert queue.estimated_start(jobs[2]) == 10  # the first slot frees after 10 s
    assert queue.estimated_start(jobs[3]) == 20  # the second after 20
    assert queue.estimated_start(jobs[4]) == 10 + 30  # after jobs[2] ran in the first slot
    jobs[1].finish()
    assert jobs[2].started == 1 and queue.position(jobs[3]) == 1
    jobs[0].finish()
    assert jobs[3].started == 1 and jobs[4].started == 0
    assert queue.counts() == (2, 1)


def test_one_run_per_visitor_and_a_bounded_queue():
    queue = RunQueue(Limits(max_jobs=1, max_queue=1))
    queue.submit(FakeJob("a"))
    with pytest.raises(Busy, match="already has a run"):
        queue.submit(FakeJob("a"))
    queue.submit(FakeJob("b"))
    with pytest.raises(Busy, match="waiting"):
        queue.submit(FakeJob("c"))


def test_fifty_simultaneous_presses_start_two_and_queue_the_rest():
    queue = RunQueue(Limits(max_jobs=2))
    jobs = [FakeJob(f"v{i}") for i in range(50)]
    places = []
    threads = [threading.Thread(target=lambda j=j: places.append(queue.submit(j))) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(places) == [0, 0, *range(1, 49)]
    assert sum(j.started for j in jobs) == 2


def test_a_gone_visitor_leaves_the_queue_and_its_run_stops():
    now = [0.0]
    queue = RunQueue(Limits(max_jobs=1, session_ttl_s=100), clock=lambda: now[0])
    running, waiting, staying = FakeJob("gone"), FakeJob("gone-too"), FakeJob("here")
    for job in (running, waiting, staying):
        queue.touch(job.visitor)
        queue.submit(job)
    now[0] = 90
    queue.touch("here")
    assert queue.reap() == []
    now[0] = 150
    assert set(queue.reap()) == {running, waiting}
    assert running.stopped == 1 and waiting.cancelled and queue.position(staying) == 1
    assert queue.is_present("here") and not queue.is_present("gone")
    running.finish()
    assert staying.started == 1


def test_cancel_takes_a_waiting_run_out(tiny_data, small_config):
    queue = RunQueue(Limits(max_jobs=1))
    first = TrainingJob(small_config.replace(epochs=200, batch_size=1), lambda: tiny_data,
                        visitor="a")
    second = TrainingJob(small_config, lambda: tiny_data, visitor="b")
    queue.submit(first)
    assert queue.submit(second) == 1 and second.active and second.status == "queued"
    assert queue.cancel(second) and second.status == "cancelled" and not second.active
    first.stop()
    first.join(30)
    assert queue.counts() == (0, 0)


def test_a_queued_job_starts_by_itself_when_a_slot_frees(tiny_data, small_config):
    queue = RunQueue(Limits(max_jobs=1))
    first = TrainingJob(small_config, lambda: tiny_data, visitor="a")
    second = TrainingJob(small_config, lambda: tiny_data, visitor="b")
    queue.submit(first)
    queue.submit(second)
    first.join(60)
    second_started = threading.Event()
    for _ in range(600):
        if second.thread is not None:
            second_started.set()
            break
        threading.Event().wait(0.05)
    assert second_started.is_set()
    second.join(60)
    assert second.snapshot().status == "finished" and queue.counts() == (0, 0)
