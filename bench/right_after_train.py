"""Issue 35's sequence, timed: python -m bench.right_after_train [--checkout DIR] [--tries N] [--delay S]

A fresh tab (1400x900) on a server with nothing else presses Train (Default), draws a 1 with the
mouse --delay seconds later (at once by default), and waits up to 20 s for `Prediction: 1`; then
Stop. Prints, per try, the seconds from pen-up to the prediction (or that none came) and, where
the page has one, to the server's "Why this prediction". --checkout runs the same sequence on
another checkout of this repository (a `git worktree` of an older commit), with that checkout's
own app and `bench.browser` helpers, so that before and after are measured the same way.
Needs MNIST_ROOT (the run must train on something) and Chromium.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

ONE = [(140, 50 + 9 * i) for i in range(21)]  # its own 1: older checkouts' bench.browser has no one()
WAIT_MS = 20_000


def tries(helpers, url: str, n: int, delay_s: float, browser) -> list[str]:
    said = []
    for _ in range(n):
        page = helpers.new_page(browser)
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(url)
        helpers.pad(page)
        page.get_by_text("Draw a digit").first.wait_for(timeout=60_000)
        train = page.get_by_role("button", name="Train", exact=True)
        train.wait_for(timeout=60_000)
        train.click()
        time.sleep(delay_s)
        helpers.draw(page, ONE)
        lifted = time.monotonic()
        try:
            page.get_by_text("Prediction: 1").first.wait_for(timeout=WAIT_MS)
        except Exception:  # noqa: BLE001 - a Playwright timeout: the stall being measured
            said.append(f"not read within {WAIT_MS / 1000:.0f} s")
        else:
            read = time.monotonic() - lifted
            try:
                page.get_by_text("Why this prediction").first.wait_for(timeout=WAIT_MS)
                said.append(f"read in {read:.2f} s, explained by the server in "
                            f"{time.monotonic() - lifted:.2f} s")
            except Exception:  # noqa: BLE001 - an older page without the explanation
                said.append(f"read in {read:.2f} s")
        stop = page.get_by_role("button", name="Stop", exact=True).and_(page.locator("button:enabled"))
        try:
            stop.wait_for(timeout=60_000)
        except Exception:  # noqa: BLE001 - a Playwright timeout: that try measured no training tab
            said[-1] += " (but Train had started no run: not a training tab)"
            page.close()
            continue
        stop.click()
        page.get_by_role("button", name="Train", exact=True).and_(
            page.locator("button:enabled")).wait_for(timeout=60_000)  # the slot is free again
        page.close()
    return said


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    if not os.environ.get("MNIST_ROOT"):
        sys.exit("Set MNIST_ROOT to a folder holding MNIST/raw: the run needs data to train on.")
    checkout = args.checkout.resolve()
    os.chdir(checkout)  # serve_app starts `streamlit run app.py` here
    sys.path.insert(0, str(checkout))
    for name in [m for m in sys.modules if m == "bench" or m.startswith("bench.")]:
        del sys.modules[name]  # that checkout's helpers, not this one's
    helpers = importlib.import_module("bench.browser")
    from playwright.sync_api import sync_playwright
    env = {"MNIST_ROOT": str(Path(os.environ["MNIST_ROOT"]).resolve()),
           "MLP_DEMO_CHECKPOINTS": tempfile.mkdtemp(prefix="right-after-train-")}
    with sync_playwright() as p, helpers.serve_app(env) as url:
        browser = p.chromium.launch(executable_path=helpers.CHROMIUM, args=helpers.FLAGS)
        for i, line in enumerate(tries(helpers, url, args.tries, args.delay, browser)):
            print(f"try {i + 1}: {line}", flush=True)


if __name__ == "__main__":
    main()
