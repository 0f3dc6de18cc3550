"""The benchmark runs end to end on tiny settings (it asserts no timings: those go in README)."""

import json
import os
import subprocess
import sys

from helpers import REPO


def test_bench_runs_and_reports_every_row(tiny_root):
    env = {**os.environ, "MNIST_ROOT": str(tiny_root)}
    run = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--device", "cpu"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "| ours, batch 64 |" in run.stdout and "roofline" in run.stdout
    (result,) = json.loads(run.stdout.strip().splitlines()[-1])
    for key in ("baseline", "ours_bs64", "roofline", "matmul_loop", "time_to_98_default", "time_to_98_fast",
                "predict_ms", "predict_ms_while_training", "peak_rss_mb", "teach_100"):
        assert key in result
    assert result["ours_bs64"]["samples_per_s"] > 0 and result["peak_rss_mb"] > 0
    assert result["teach_100"]["examples"] == 100 and "| teach the shipped model" in run.stdout
    assert "images" in result["time_to_98_fast"] and len(result["ours_bs256"]["speedups"]) == 1


def test_store_bench_runs(tiny_root):
    """bench.server's listing part on a few files (its memory part needs the full MNIST)."""
    from bench.server import listing_seconds
    r = listing_seconds(20)
    assert r["listed"] == 21 and r["warm_s"] > 0
