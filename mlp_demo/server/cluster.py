"""Training on a Ray cluster: a class's runs leave the web process, which then only serves pages.

Imported only when MLP_DEMO_RAY_ADDRESS is set (ui/server.py); nothing else imports Ray.

- RunActor: a Ray actor on a worker that runs one TrainingJob or TeachingJob, the same code as
  in the app's threads, asking for MLP_DEMO_RAY_CPUS CPUs, or MLP_DEMO_RAY_GPUS of a GPU so
  that several runs share one card. MNIST goes into Ray's object store once, not per run.
- RayJob: the Job protocol on the app's side. A thread follows the actor: its progress and
  curves every POLL_S, its weights only while someone reads them (the pad showing the live
  model) and at most every WEIGHTS_EVERY_S, and once at the end. The page reads what the thread
  last got, so a slow or lost worker never blocks it; a lost one becomes a failed run.
- ClusterQueue: a named, detached actor, one per cluster, that admits runs: at most
  MLP_DEMO_MAX_JOBS training across the cluster, one per visitor, at most MLP_DEMO_MAX_QUEUE
  waiting, first come first served. Ray's scheduler places the admitted ones. An app process
  that stops renewing its runs' places (it died) loses them after LEASE_S.
- ClusterRunQueue: the RunQueue the page knows (submit, cancel, position, estimated start,
  heartbeats and the reaper), over ClusterQueue.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import replace

import ray
import torch

from ..config import TrainConfig
from ..model import MLP
from ..teach import TeachConfig
from .jobs import (
    JobSnapshot,
    LocalJobs,
    Progress,
    eta_seconds,
    teaching_estimate,
    training_estimate,
)
from .limits import ONE_RUN_A_TAB, Busy, Limits, RunQueue

log = logging.getLogger("mlp_demo.server.cluster")
POLL_S = 0.5  # progress and curves: twice the page's own refresh (1 s)
WEIGHTS_EVERY_S = 2.0
RPC_TIMEOUT_S = 30
NO_WORKER_S = 600  # an actor nobody could place or reach this long is a failed run
LEASE_S = 60
NAMESPACE, QUEUE_NAME = "mlp_demo", "mlp_demo_queue"
ENDED = ("finished", "stopped", "diverged", "failed", "cancelled")


def connect(address: str) -> None:
    """Join the cluster at MLP_DEMO_RAY_ADDRESS ("auto", "host:6379" or "ray://host:10001")."""
    if not ray.is_initialized():
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)


@ray.remote
class RunActor:
    """One run on a worker. raw (MNIST's tensors) arrives from the object store."""

    def __init__(self, kind: str, raw: tuple, spec: dict, visitor: str, max_seconds: float | None):
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        torch.set_num_threads(max(1, int(cpus)))
        local = LocalJobs()
        if kind == "training":
            self.job = local.training(spec["config"], raw, visitor, max_seconds)
        else:
            model = MLP(spec["model_config"])
            model.load_state_dict(spec["weights"])
            self.job = local.teaching(model, spec["images"], spec["labels"], raw, visitor,
                                      max_seconds, spec["teach_config"])
        self.where = {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}
        self.job.start()

    def snapshot(self) -> dict:
        """JobSnapshot.to_dict(): plain data crosses to the app's process."""
        return replace(self.job.snapshot(), worker=self.where).to_dict()

    def weights(self) -> dict | None:
        model = self.job.model()
        return None if model is None else model.state_dict()

    def stop(self) -> None:
        self.job.stop()


class RayJob:
    """A run on a RunActor, as the Job protocol: start() returns at once."""

    def __init__(self, kind: str, raw_ref, spec: dict, visitor: str, max_seconds: float | None,
                 model_config: TrainConfig, settings: dict, estimate_s: float, options: dict,
                 starting_model: MLP | None = None):
        self.kind = kind
        self.visitor, self.model_config, self.max_seconds = visitor, model_config, max_seconds
        self.raw_ref, self.spec, self.options, self.estimate_s = raw_ref, spec, options, estimate_s
        self.lock = threading.Lock()
        self.stop_requested = threading.Event()
        self._preview = starting_model  # a teaching run reads with its starting model until taught
        self._weights_wanted = 0.0
        self._thread: threading.Thread | None = None
        total = spec["teach_config"].steps if kind == "teaching" else 0
        self._snapshot = JobSnapshot("queued", kind, settings, progress=Progress(total_steps=total))

    # -- the Job protocol
    def start(self, on_done=None) -> RayJob:
        self._set(status="starting")
        self._thread = threading.Thread(target=self._follow, args=(on_done,), daemon=True,
                                        name="mlp_demo-ray-run")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_requested.set()  # the following thread tells the actor

    def cancel(self, reason: str) -> None:
        self._set(status="cancelled", message=reason)

    @property
    def status(self) -> str:
        with self.lock:
            return self._snapshot.status

    @property
    def active(self) -> bool:
        """Queued, or its follower thread still going: as for TrainingJob, the tab's slot is
        free only once the thread has given the queue's place back (on_done), not as soon as
        the status reads ended (a new run submitted in between was refused as a second one)."""
        if self._thread is not None:
            return self._thread.is_alive()
        return self.status == "queued"

    def snapshot(self) -> JobSnapshot:
        with self.lock:
            return self._snapshot

    def eta_seconds(self) -> float:
        return eta_seconds(self.snapshot().progress, self.estimate_s, self.max_seconds)

    def model(self) -> MLP | None:
        """The latest weights the worker sent (a copy); asking keeps them coming while it runs."""
        self._weights_wanted = time.monotonic()
        with self.lock:
            return copy.deepcopy(self._preview) if self._preview is not None else None

    def join(self, timeout: float | None = None) -> None:
        if self._thread:
            self._thread.join(timeout)

    # -- following the actor
    def _set(self, **fields) -> None:
        with self.lock:
            self._snapshot = replace(self._snapshot, **fields)

    def _follow(self, on_done) -> None:
        actor, last_weights, unanswered_since = None, 0.0, time.monotonic()
        try:
            actor = RunActor.options(**self.options).remote(
                self.kind, self.raw_ref, self.spec, self.visitor, self.max_seconds)
            stop_sent = False
            while True:
                if self.stop_requested.is_set() and not stop_sent:
                    actor.stop.remote()
                    stop_sent = True
                try:
                    snapshot = JobSnapshot.from_dict(
                        ray.get(actor.snapshot.remote(), timeout=RPC_TIMEOUT_S))
                except ray.exceptions.GetTimeoutError:  # not placed yet, or a slow worker
                    if time.monotonic() - unanswered_since > NO_WORKER_S:
                        raise
                    continue
                unanswered_since = time.monotonic()
                ended = snapshot.status in ENDED
                wanted = time.monotonic() - self._weights_wanted < 2 * WEIGHTS_EVERY_S
                if ended or (wanted and time.monotonic() - last_weights >= WEIGHTS_EVERY_S):
                    self._take_weights(ray.get(actor.weights.remote(), timeout=RPC_TIMEOUT_S))
                    last_weights = time.monotonic()
                with self.lock:
                    self._snapshot = snapshot
                if ended:
                    break
                time.sleep(POLL_S)
        except Exception as e:  # noqa: BLE001 - a killed actor, a lost node, a lost cluster
            log.warning("a run on Ray failed: %r", e)
            self._set(status="failed", message=(
                f"the worker training this run was lost ({type(e).__name__}); the weights it "
                "had sent are kept: train again to start a new run"))
        finally:
            if actor is not None:
                try:
                    ray.kill(actor)
                except Exception:  # noqa: BLE001 - already gone
                    pass
            if on_done:
                on_done(self)

    def _take_weights(self, weights: dict | None) -> None:
        if weights is None:
            return
        model = MLP(self.model_config).eval()
        model.load_state_dict(weights)
        with self.lock:
            self._preview = model


class RayJobs:
    """Makes the Session's jobs as RayJobs (jobs.LocalJobs makes them in-process)."""

    def __init__(self, cpus: float = 1, gpus: float = 0):
        self.options = {"num_cpus": cpus, "num_gpus": gpus}
        self._raw: tuple = (None, None)  # (MNIST as loaded, its object-store reference)

    def _raw_ref(self, raw: tuple):
        """MNIST in the object store once per process (raw is the app's one cached copy)."""
        if self._raw[0] is not raw:
            self._raw = (raw, ray.put(raw))
        return self._raw[1]

    def training(self, config: TrainConfig, raw: tuple, visitor: str,
                 max_seconds: float | None) -> RayJob:
        config = config.validate()
        estimate = training_estimate(config, len(raw[0]) - config.val_size)
        return RayJob("training", self._raw_ref(raw), {"config": config}, visitor, max_seconds,
                      config, config.to_dict(), estimate, self.options)

    def teaching(self, model: MLP, images: torch.Tensor, labels: torch.Tensor, raw: tuple,
                 visitor: str, max_seconds: float | None, teach_config: TeachConfig) -> RayJob:
        teach_config = teach_config.validate()
        spec = {"model_config": model.config, "images": images, "labels": labels,
                "teach_config": teach_config,
                "weights": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
        estimate = teaching_estimate(model.config, teach_config)
        return RayJob("teaching", self._raw_ref(raw), spec, visitor, max_seconds, model.config,
                      dataclasses.asdict(teach_config), estimate, self.options,
                      starting_model=copy.deepcopy(model).cpu().eval())


@ray.remote(num_cpus=0)
class ClusterQueue:
    """The cluster's runs: those admitted (training, or about to) and those waiting."""

    def __init__(self):
        self.admitted: dict[str, dict] = {}
        self.waiting: list[dict] = []
        self.ran: deque = deque(maxlen=1000)  # where the latest runs trained: {"pid", "node"}

    def submit(self, job_id: str, visitor: str, eta_s: float, max_running: int,
               max_waiting: int) -> int | str:
        """0: admitted; n: n-th in line; "busy": the visitor has a run; "full": no room."""
        self._expire()
        if any(e["visitor"] == visitor for e in (*self.admitted.values(), *self.waiting)):
            return "busy"
        entry = {"id": job_id, "visitor": visitor, "eta": eta_s, "renewed": time.monotonic()}
        if len(self.admitted) < max_running:
            self.admitted[job_id] = entry
            return 0
        if len(self.waiting) >= max_waiting:
            return "full"
        self.waiting.append(entry)
        return len(self.waiting)

    def ended(self, job_id: str, worker: dict | None = None) -> None:
        self.admitted.pop(job_id, None)
        self.waiting = [e for e in self.waiting if e["id"] != job_id]
        if worker:
            self.ran.append(worker)

    def workers(self) -> list[dict]:
        """Where the latest runs trained (a hall's bench checks that none was an app process)."""
        return list(self.ran)

    def places(self, etas: dict[str, float], max_running: int) -> dict[str, tuple]:
        """Renew these runs' places and report each: (admitted, position, estimated start s)."""
        now = time.monotonic()
        for entry in (*self.admitted.values(), *self.waiting):
            if entry["id"] in etas:
                entry.update(eta=etas[entry["id"]], renewed=now)
        self._expire()
        while self.waiting and len(self.admitted) < max_running:
            entry = self.waiting.pop(0)
            self.admitted[entry["id"]] = entry
        free_at = sorted(e["eta"] for e in self.admitted.values())[:max_running]
        free_at += [0.0] * (max_running - len(free_at))
        found = {job_id: (True, None, None) for job_id in etas if job_id in self.admitted}
        for position, entry in enumerate(self.waiting, start=1):
            free_at.sort()
            if entry["id"] in etas:
                found[entry["id"]] = (False, position, free_at[0])
            free_at[0] += entry["eta"]
        return found

    def counts(self) -> tuple[int, int]:
        return len(self.admitted), len(self.waiting)

    def _expire(self) -> None:
        cutoff = time.monotonic() - LEASE_S
        self.admitted = {k: e for k, e in self.admitted.items() if e["renewed"] >= cutoff}
        self.waiting = [e for e in self.waiting if e["renewed"] >= cutoff]


class ClusterRunQueue(RunQueue):
    """RunQueue's interface over the cluster's ClusterQueue: this process keeps its own runs
    (for the page, the heartbeats and the reaper); the cluster decides which may train."""

    def __init__(self, limits: Limits, clock=time.monotonic):
        super().__init__(limits, clock)
        self.cluster = ClusterQueue.options(name=QUEUE_NAME, namespace=NAMESPACE,
                                            lifetime="detached", get_if_exists=True).remote()
        self._ids: dict[int, str] = {}  # id(job) -> its id in the cluster's queue
        self._places: dict[int, tuple] = {}  # id(job) -> (position, estimated start)
        threading.Thread(target=self._admit_forever, daemon=True, name="mlp_demo-admit").start()

    def submit(self, job) -> int:
        with self.lock:
            self._refuse_a_second_run(job)
        job_id = uuid.uuid4().hex
        try:
            answer = ray.get(self.cluster.submit.remote(job_id, job.visitor, job.eta_seconds(),
                                                        self.limits.max_jobs, self.limits.max_queue),
                             timeout=RPC_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - the head or its queue went away
            log.exception("the cluster's queue did not answer")
            raise Busy("the training cluster does not answer; try again in a minute") from None
        if answer == "busy":
            raise Busy(ONE_RUN_A_TAB)
        if answer == "full":
            raise Busy(f"{self.limits.max_queue} runs are already waiting on the cluster, the most "
                       "it queues; try again in a few minutes")
        with self.lock:
            self._ids[id(job)] = job_id
            if answer == 0:
                self._start(job)
            else:
                self.waiting.append(job)
                self._places[id(job)] = (answer, None)
        return answer

    def cancel(self, job) -> bool:
        if not super().cancel(job):
            return False
        self._forget(job)  # and give its place in the cluster's line back
        return True

    def reap(self) -> list:
        gone = super().reap()
        for job in gone:
            if job.status == "cancelled":  # taken out of the line (the running ones end by themselves)
                self._forget(job)
        return gone

    def _finished(self, job) -> None:
        with self.lock:
            if job in self.running:
                self.running.remove(job)
        self._forget(job)

    def _forget(self, job) -> None:
        with self.lock:
            job_id = self._ids.pop(id(job), None)
            self._places.pop(id(job), None)
        if job_id is not None:
            self.cluster.ended.remote(job_id, job.snapshot().worker)

    def position(self, job) -> int | None:
        with self.lock:
            return self._places.get(id(job), (None, None))[0] if job in self.waiting else None

    def estimated_start(self, job) -> float | None:
        with self.lock:
            return self._places.get(id(job), (None, None))[1] if job in self.waiting else None

    def _admit_forever(self) -> None:
        while True:
            time.sleep(POLL_S)
            try:
                self.admit()
            except Exception:  # noqa: BLE001 - the head is away: try again, the page keeps going
                log.warning("the cluster's queue did not answer", exc_info=True)

    def admit(self) -> None:
        """Renew this process's places, start the runs the cluster admitted, note the others'."""
        with self.lock:
            mine = {self._ids[id(j)]: j for j in (*self.running, *self.waiting) if id(j) in self._ids}
        if not mine:
            return
        etas = {job_id: job.eta_seconds() for job_id, job in mine.items()}
        places = ray.get(self.cluster.places.remote(etas, self.limits.max_jobs), timeout=RPC_TIMEOUT_S)
        with self.lock:
            for job_id, (admitted, position, start) in places.items():
                job = mine[job_id]
                if job not in self.waiting:
                    continue
                if admitted:
                    self.waiting.remove(job)
                    self._places.pop(id(job), None)
                    self._start(job)
                else:
                    self._places[id(job)] = (position, start)
