"""What a user feels, measured in the running app: python -m bench.browser [--repeats N]

Starts `streamlit run app.py` on a free port, opens it in Chromium (Playwright, the Debian
browser at /usr/bin/chromium) and measures: on a cold server, when the drawing pad appears,
whether it moves afterwards and when a digit drawn at once is read; when it appears on a warm
server; how long from lifting the mouse until the prediction shows, with no training and with
a training run going in the same tab; the pad's own work per update in the browser while the pen
moves (and with the CPU slowed 4x, about a phone); the training speed the app reports meanwhile.
Prints a Markdown table, then one JSON line. The real-browser tests drive the app with the same
helpers (tests/test_browser*.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
BLANK_PAD = "Draw a digit on the black pad"
PAD_SELECTOR = ".mlp-pad canvas.pad"  # the pad's one canvas (mlp_demo/web/pad.html)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppURL(str):
    """The served app's URL, with the server's process (its id: for its RSS and thread count)."""
    pid: int
    process: subprocess.Popen


@contextlib.contextmanager
def serve_app(env: dict):
    """`streamlit run app.py` on a free local port, until the block ends; yields its URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port",
                             str(port), "--server.address", "127.0.0.1", "--server.headless",
                             "true"], cwd=REPO,
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    scheme = "https" if env.get("STREAMLIT_SERVER_SSL_CERT_FILE") else "http"  # a self-signed one
    url, deadline = AppURL(f"{scheme}://127.0.0.1:{port}"), time.monotonic() + 60
    url.pid, url.process = proc.pid, proc
    unverified = ssl._create_unverified_context()
    try:
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2,
                                          context=unverified).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("streamlit did not start")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def pad(page) -> dict:
    """The drawing pad's box on screen."""
    canvas = page.locator(PAD_SELECTOR).last
    canvas.wait_for(state="visible", timeout=30_000)
    canvas.scroll_into_view_if_needed()  # the mouse only reaches what is on screen
    return canvas.bounding_box()


def draw(page, points: list[tuple[float, float]], box: dict | None = None) -> None:
    """One mouse stroke through points given in pad pixels (0..280), on the pad where it is
    now, or where it was (box): a visitor draws where they saw it."""
    box = box or pad(page)
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=3)
    page.mouse.up()


def seven() -> list[tuple[float, float]]:
    return ([(60 + 16 * i, 50) for i in range(11)]
            + [(220 - 10 * i, 50 + 20 * i) for i in range(1, 11)])


def one() -> list[tuple[float, float]]:
    return [(140, 40 + i * 10) for i in range(21)]


def zero() -> list[tuple[float, float]]:
    return [(140 + 70 * math.sin(t / 36 * 2 * math.pi), 140 - 100 * math.cos(t / 36 * 2 * math.pi))
            for t in range(38)]


def body_has(page, text: str, timeout_ms: float) -> None:
    page.wait_for_function(f"() => document.body.innerText.includes({json.dumps(text)})",
                           timeout=timeout_ms)


def seconds_to_prediction(page) -> float:
    """Clear the pad, draw a 7, and time from lifting the mouse until a prediction shows."""
    page.get_by_role("button", name="Clear", exact=True).click()
    body_has(page, BLANK_PAD, 20_000)
    draw(page, seven())
    start = time.perf_counter()
    body_has(page, "Prediction:", 20_000)
    return time.perf_counter() - start


def new_page(browser):
    """A desktop-sized tab: the pad, the prediction and the sidebar side by side."""
    return browser.new_page(viewport={"width": 1400, "height": 1000})


def seconds_to_usable(browser, url: str) -> float:
    page = new_page(browser)
    start = time.perf_counter()
    page.goto(url)
    pad(page)
    seconds = time.perf_counter() - start
    page.close()
    return seconds


def cold_start(browser, url: str) -> dict:
    """On a server nobody has visited yet: when the pad appears (its place is final then: the
    sidebar is in the same first paint), whether it moved in the next 10 s, and when a 7 drawn
    the moment it appeared is read (torch is still importing meanwhile)."""
    page = new_page(browser)
    start = time.perf_counter()
    page.goto(url)
    first = pad(page)
    appeared = time.perf_counter() - start
    draw(page, seven())
    body_has(page, "Prediction:", 60_000)
    answered = time.perf_counter() - start
    text = page.get_by_text("Prediction:").first.inner_text().strip()
    moved = 0.0
    while time.perf_counter() - start < appeared + 10:
        box = pad(page)
        moved = max(moved, abs(box["x"] - first["x"]), abs(box["y"] - first["y"]))
        time.sleep(0.25)
    page.close()
    return {"pad_appears_s": appeared, "first_prediction_s": answered,
            "first_prediction": text, "pad_moved_px": moved}


def clear_then_draw(browser, url: str) -> dict:
    """A first visitor on a fresh server, as issue 23 found them: 2 s after the pad appears they
    draw a 1; once it is read they press Clear, and 1 s later draw a 0. Whether the 0 is read
    within 10 s. The two pauses are the sequence itself; everything else waits on the page.
    Every stroke goes where the pad first appeared, as a person's would."""
    page = new_page(browser)
    try:
        page.goto(url)
        box = pad(page)
        time.sleep(2)
        draw(page, one(), box)
        body_has(page, "Prediction:", 60_000)
        page.get_by_role("button", name="Clear", exact=True).click()
        time.sleep(1)
        draw(page, zero(), box)
        start = time.perf_counter()
        try:
            body_has(page, "Prediction: 0", 10_000)
            return {"zero_read": True, "seconds": time.perf_counter() - start}
        except Exception:
            text = page.inner_text("body")
            shown = re.search(r"Prediction: \d|Draw a digit on the black pad|draw again", text)
            return {"zero_read": False, "shown": shown.group(0) if shown else None}
    finally:
        page.close()


def cold_clears(n: int, env: dict) -> list[dict]:
    """clear_then_draw on n servers, each started afresh."""
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        for _ in range(n):
            with serve_app(env) as url:
                results.append(clear_then_draw(browser, url))
            print(json.dumps(results[-1]), file=sys.stderr)
        browser.close()
    return results


def pad_speed(page, throttle: float = 1) -> dict:
    """The pad's work in the browser while the pen moves: a 1 s stroke (a 7, 60 mouse moves),
    with Chromium's CPU slowed `throttle` times (4: about a phone). Milliseconds per update
    (preprocessing + forward pass + softmax), p50 and p95, and updates per second."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": throttle})
    page.get_by_role("button", name="Clear", exact=True).click()
    box, points = pad(page), seven()
    path = [points[0]] + [(points[0][0] + (b[0] - points[0][0]) * t, points[0][1] + (b[1] - points[0][1]) * t)
                          for b in points[1:] for t in (0.33, 0.66, 1.0)]
    page.evaluate("() => { window.__padTimings.length = 0; }")
    page.mouse.move(box["x"] + path[0][0], box["y"] + path[0][1])
    page.mouse.down()
    start = time.perf_counter()
    for x, y in path[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y)
        time.sleep(1 / len(path))
    seconds = time.perf_counter() - start
    during = page.evaluate("() => window.__padTimings.slice()")
    page.mouse.up()
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})
    ms = sorted(during)
    return {"throttle": throttle, "updates": len(ms), "stroke_s": seconds,
            "updates_per_s": len(ms) / seconds, "p50_ms": statistics.median(ms),
            "p95_ms": ms[int(0.95 * (len(ms) - 1))]}


def samples_per_s(page) -> float:
    """The training speed the progress line shows ("... · 12,345 samples/s · ...")."""
    found = re.search(r"([\d,]+) samples/s", page.inner_text("body"))
    return float(found.group(1).replace(",", "")) if found else 0.0


def measure(url: str, repeats: int) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        r = {"cold": cold_start(browser, url),
             "usable_warm_s": statistics.median(seconds_to_usable(browser, url) for _ in range(3))}
        page = new_page(browser)
        page.goto(url)
        body_has(page, BLANK_PAD, 30_000)  # torch and the shipped model are loaded
        r["prediction_idle_s"] = [seconds_to_prediction(page) for _ in range(repeats)]
        r["pad_speed"] = [pad_speed(page, 1), pad_speed(page, 4)]
        # The best-accuracy preset: the heaviest run the app offers, and long enough to
        # still be going after the timed predictions.
        page.locator("[data-testid=stSelectbox] input").first.click()
        page.get_by_role("option", name="Best accuracy").click()
        body_has(page, "Augmentation", 10_000)
        page.get_by_role("button", name="Train", exact=True).click()
        body_has(page, "samples/s", 60_000)
        r["prediction_training_s"], speeds = [], []
        for _ in range(repeats):
            r["prediction_training_s"].append(seconds_to_prediction(page))
            speeds.append(samples_per_s(page))
        r["app_samples_per_s"] = speeds
        r["still_training"] = page.get_by_role("button", name="Stop", exact=True).is_enabled()
        page.get_by_role("button", name="Stop", exact=True).click()
        browser.close()
    return r


def table(r: dict) -> str:
    def spread(values):
        return f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"

    return "\n".join([
        "| in the browser | measured |", "|---|---|",
        f"| cold server: pad appears, in its final place | {r['cold']['pad_appears_s']:.2f} s "
        f"(moved {r['cold']['pad_moved_px']:.0f} px in the next 10 s) |",
        f"| cold server: a 7 drawn at once is read | {r['cold']['first_prediction_s']:.2f} s after "
        f"opening ({r['cold']['first_prediction']}) |",
        f"| warm server: pad appears | {r['usable_warm_s']:.2f} s |",
        f"| mouse lifted -> prediction shown, no training | {spread(r['prediction_idle_s'])} |",
        *(f"| in the browser, CPU slowed {p['throttle']:g}x: ms per update while the pen moves | "
          f"p50 {p['p50_ms']:.2f}, p95 {p['p95_ms']:.2f} ({p['updates_per_s']:.0f} updates/s) |"
          for p in r["pad_speed"]),
        f"| the same with a training run going | {spread(r['prediction_training_s'])}"
        f"{'' if r['still_training'] else ' (the run ended before the last one)'} |",
        f"| training speed the app showed meanwhile | {min(r['app_samples_per_s']):,.0f}-"
        f"{max(r['app_samples_per_s']):,.0f} samples/s |"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="predictions timed in each state")
    parser.add_argument("--cold-clears", type=int, default=0, metavar="N",
                        help="instead: N fresh servers, each drawn on, cleared and drawn on at once "
                             "(default 0)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as saved:
        if args.cold_clears:
            results = cold_clears(args.cold_clears, {"MLP_DEMO_CHECKPOINTS": saved})
            lost = sum(not r["zero_read"] for r in results)
            print(json.dumps({"cold_starts": len(results), "zeros_lost": lost,
                              "loss_rate": lost / len(results)}))
            return
        with serve_app({"MLP_DEMO_CHECKPOINTS": saved}) as url:
            r = measure(url, args.repeats)
    print(table(r), end="\n\n")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
