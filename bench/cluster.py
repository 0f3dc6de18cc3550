"""The pad while a class trains: python -m bench.cluster [--seconds 20] [--runs 2]

Times what the pad does for each stroke (Session.predict: read the drawing, preprocess, predict
and explain; the shipped model), over and over in the web process, in three states of the same
bench run: nothing training (the baseline), --runs runs training in this process's threads
(the app without MLP_DEMO_RAY_ADDRESS), and the same runs training on a local Ray instance
(ray.init(num_cpus=2)) through RayJobs and the cluster's queue. Prints p50 and p95 of each
and their ratios to the baseline, then one JSON line. MNIST from MNIST_ROOT.

On one machine the Ray workers still share its cores with the web process; what moves out is
the Python: the trainer's threads no longer hold the web process's interpreter lock.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from mlp_demo.server.settings import Settings


def drawing_url() -> str:
    import base64
    import io

    from PIL import Image, ImageDraw

    im = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(im).line([(140, 40), (140, 240)], fill=255, width=20)
    out = io.BytesIO()
    im.save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def stroke_latencies(me, seconds: float) -> list[float]:
    from mlp_demo.server.session import SHIPPED

    me.choose(next(label for label in me.choices() if label.startswith(SHIPPED)))
    url, times, end = drawing_url(), [], time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        me.predict(url)
        times.append(time.perf_counter() - start)
        time.sleep(0.05)  # a stroke every ~50 ms, not a busy loop
    return times


def while_training(make_session, runs: int, seconds: float, config) -> dict:
    trainers = [make_session() for _ in range(runs)]
    for me in trainers:
        me.train(config)
    deadline = time.monotonic() + 300
    while not all(me.job.snapshot().progress.step > 0 for me in trainers):
        assert time.monotonic() < deadline, "the runs did not start"
        time.sleep(0.1)
    times = stroke_latencies(make_session(), seconds)
    steps = [me.job.snapshot().progress.step for me in trainers]
    still = all(me.job.active for me in trainers)
    for me in trainers:
        me.stop(wait_s=30)
    return {"times": times, "still_training": still, "steps": steps}


def summary(times: list[float]) -> dict:
    ms = np.array(times) * 1000
    return {"n": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="strokes timed in each state")
    parser.add_argument("--runs", type=int, default=2, help="runs training meanwhile")
    args = parser.parse_args(argv)

    import ray

    from mlp_demo.checkpoints import DEFAULT_CHECKPOINT
    from mlp_demo.config import TrainConfig
    from mlp_demo.data import load_mnist
    from mlp_demo.server.cluster import ClusterRunQueue, RayJobs
    from mlp_demo.server.limits import Limits, RunQueue, configure_threads
    from mlp_demo.server.session import Session
    from mlp_demo.server.store import ModelStore

    configure_threads()
    raw = load_mnist(Settings.from_env().mnist_root, download=False)
    limits = Limits(max_jobs=args.runs)
    config = TrainConfig(epochs=50, device="cpu")  # the Default preset's model, long enough
    folder = tempfile.mkdtemp()
    store = ModelStore(folder, limits, shipped=DEFAULT_CHECKPOINT)
    counter = iter(range(10**6))

    local_queue = RunQueue(limits)

    def local_session():
        return Session(f"v{next(counter)}", local_queue, store, limits, lambda: raw)

    stroke_latencies(local_session(), 2)  # first-use costs out of the timings
    idle = stroke_latencies(local_session(), args.seconds)
    threads = while_training(local_session, args.runs, args.seconds, config)

    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200_000_000,
             log_to_driver=False)
    cluster_queue, jobs = ClusterRunQueue(limits), RayJobs(cpus=1)

    def ray_session():
        return Session(f"v{next(counter)}", cluster_queue, store, limits, lambda: raw, jobs=jobs)
    on_ray = while_training(ray_session, args.runs, args.seconds, config)
    ray.shutdown()

    result = {"idle": summary(idle), "threads": summary(threads["times"]),
              "ray": summary(on_ray["times"]), "runs": args.runs,
              "still_training": threads["still_training"] and on_ray["still_training"],
              "steps_in_threads": threads["steps"], "steps_on_ray": on_ray["steps"]}
    base = result["idle"]
    print("| a stroke's work in the web process (Session.predict) | p50 | p95 |")
    print("|---|---|---|")
    for name, key in (("nothing training (baseline)", "idle"),
                      (f"{args.runs} runs training in this process's threads", "threads"),
                      (f"{args.runs} runs training on Ray (local, 2 CPUs)", "ray")):
        r = result[key]
        print(f"| {name} | {r['p50_ms']} ms ({r['p50_ms'] / base['p50_ms']:.1f}x) | "
              f"{r['p95_ms']} ms ({r['p95_ms'] / base['p95_ms']:.1f}x) |")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
