"""A class at once: python -m bench.load [--sessions N] [--training K] [--queued Q] [--board]

Starts `streamlit run app.py` and opens N browser sessions (separate Chromium contexts, as
separate visitors). K of them press Train on a long run (the server gets K slots), Q more press
Train and wait in the queue, and then all N draw digits (1, 0, 7) at the same time, several
rounds, reading each prediction with the shipped model. Prints a Markdown table and one JSON line:
wrong or missing predictions, mouse-up to prediction (p50, p95), the server's RSS and thread
count before (after one visitor drew and trained, so that one-time loads are in the baseline),
with idle sessions, while training, and --settle seconds after all close. With --board, a
class board (60 students, 300 runs) stays open in another tab throughout, refreshing every 3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

from .browser import BLANK_PAD, CHROMIUM, FLAGS, PAD_SELECTOR, serve_app, seven

DIGITS = {
    "1": [(140, 40 + i * 10) for i in range(21)],
    "0": [(140 + 70 * math.sin(t / 36 * 2 * math.pi), 140 - 100 * math.cos(t / 36 * 2 * math.pi))
          for t in range(38)],
    "7": seven(),
}


DEBUG = False
HAS_INK = """c => {  // white ink on the pad's black canvas
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 0; i < d.length; i += 4 * 13) if (d[i] > 128) return true;
  return false;
}"""
IDLE = "() => !document.querySelector('[data-testid=stStatusWidget]')"


def server_stats(pid: int) -> dict:
    """RSS (MB) and thread count of the server process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "threads": int(fields["Threads"])}


async def wait_text(page, text: str, timeout_ms: float) -> None:
    await page.wait_for_function(f"() => document.body.innerText.includes({json.dumps(text)})",
                                 timeout=timeout_ms)


async def open_session(browser, url: str):
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    await page.goto(url)
    await wait_text(page, BLANK_PAD, 120_000)
    return context, page


async def canvas_box(page) -> dict:
    """The pad's box, once its canvas is on screen (a page may still be drawing it)."""
    for _ in range(50):
        canvas = page.locator(PAD_SELECTOR).last
        try:
            await canvas.wait_for(state="visible", timeout=10_000)
            box = await canvas.bounding_box(timeout=1_000)
        except Exception:  # replaced while we looked
            box = None
        if box:
            return box
    raise RuntimeError("the drawing pad never became ready")


async def has_ink(page, timeout_s: float = 3) -> bool:
    """Whether the stroke reached the pad's canvas."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            canvas = page.locator(PAD_SELECTOR).last
            if await canvas.evaluate(HAS_INK, timeout=1_000):
                return True
        except Exception:
            pass
        await asyncio.sleep(0.1)
    return False


async def draw_and_read(page, digit: str, timeout_s: float) -> tuple[str | None, float | None, int]:
    """Clear, draw, and time mouse-up -> 'Prediction: d'; (None, None) if none came in time;
    and how many strokes the canvas did not take (and were drawn again)."""
    await page.get_by_role("button", name="Clear", exact=True).click()  # empties the pad at once
    await wait_text(page, BLANK_PAD, 60_000)
    # As a person would: draw once the page has settled (Streamlit's "running" indicator gone);
    # a stroke on a pad whose rerun is still being drawn can be lost by the canvas component.
    await page.wait_for_function(IDLE, timeout=60_000)
    lost = 0
    while True:
        box, points = await canvas_box(page), DIGITS[digit]
        await page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
        await page.mouse.down()
        for x, y in points[1:]:
            await page.mouse.move(box["x"] + x, box["y"] + y, steps=3)
        await page.mouse.up()
        if await has_ink(page) or lost == 3:
            break
        lost += 1  # the canvas widget did not take the stroke: draw again, as a person would
    start = time.perf_counter()
    try:
        await wait_text(page, "Prediction:", timeout_s * 1000)
    except Exception:
        if DEBUG:
            await page.screenshot(path=f"/tmp/missing-{digit}-{id(page)}.png")
        return None, None, lost
    seconds = time.perf_counter() - start
    text = await page.get_by_text("Prediction:").first.inner_text()
    return text.strip().removeprefix("Prediction:").strip(), seconds, lost


async def set_epochs(page, key: str, value: str) -> None:
    """Move the epochs slider and wait until the server has it (the page writes every setting
    into the address bar as it reruns): a Train pressed before would train the default 5."""
    await page.locator(".st-key-hp_epochs input").focus()
    await page.keyboard.press(key)
    await page.wait_for_function(
        "v => new URLSearchParams(location.search).get('epochs') === v", arg=value, timeout=30_000)


async def press_train(page, queued: bool) -> None:
    """A long run (the default settings with the most epochs); then the pad goes back to the
    shipped model."""
    await set_epochs(page, "End", "200")
    await page.get_by_role("button", name="Train", exact=True).click()
    await wait_text(page, "number" if queued else "samples/s", 120_000)
    await choose_shipped(page)
    await wait_text(page, BLANK_PAD, 30_000)


async def choose_shipped(page) -> None:
    """Pick the shipped model under the pad. The pad redraws every 2 s while the live model
    trains, which can close a list just opened: open it again until the choice is made."""
    for _ in range(10):
        await page.get_by_label("Model", exact=True).click()
        try:
            await page.get_by_role("option", name="Shipped model").click(timeout=3_000)
            return
        except Exception:  # noqa: BLE001 - closed under the redraw: again
            continue
    raise RuntimeError("the Model list never stayed open")


async def warm_up(browser, url: str) -> None:
    """One visitor draws and trains a short run first, so the baseline includes what a server
    loads once (torch, the shipped model, MNIST, plotly's figure code, pandas)."""
    context, page = await open_session(browser, url)
    await set_epochs(page, "Home", "1")
    await page.get_by_role("button", name="Train", exact=True).click()
    await wait_text(page, "finished", 180_000)
    # The run's end redraws the whole page, which would close a list opened before it: wait
    # for that redraw (Train enabled again) before choosing the model.
    await page.get_by_role("button", name="Train", exact=True).and_(
        page.locator("button:enabled")).wait_for(timeout=60_000)
    await page.get_by_label("Model", exact=True).click()
    await page.get_by_role("option", name="Shipped model").click()
    await draw_and_read(page, "1", 30)
    await context.close()
    await asyncio.sleep(5)


async def open_board(browser, url: str, database: str):
    from mlp_demo.server import db
    from mlp_demo.server.classes import Classes
    from mlp_demo.server.limits import Limits

    from .board import fill

    engine = db.connect(database)
    code, _ = fill(Classes(engine, Limits(class_max_runs=10**6, student_max_runs=10**6)), 60, 300)
    engine.dispose()
    context = await browser.new_context(viewport={"width": 1600, "height": 1200})
    page = await context.new_page()
    await page.goto(f"{url}?class={code}&view=board")
    await wait_text(page, "300 runs in", 120_000)
    return page


async def measure(args) -> dict:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as saved:
        database = f"sqlite:///{Path(saved) / 'classes.sqlite3'}"
        env = {"MLP_DEMO_CHECKPOINTS": saved, "MLP_DEMO_SESSION_TTL_S": str(args.ttl),
               "MLP_DEMO_MAX_JOBS": str(max(args.training, 1)),  # so that --queued ones wait
               "MLP_DEMO_DATABASE_URL": database}
        with serve_app(env) as url:
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                await warm_up(browser, url)
                board = await open_board(browser, url, database) if args.board else None
                r = {"baseline": server_stats(url.pid)}
                sessions = [await open_session(browser, url) for _ in range(args.sessions)]
                r["idle"] = server_stats(url.pid)
                pages = [page for _, page in sessions]
                trainers = pages[:args.training + args.queued]
                for i, page in enumerate(trainers):
                    await press_train(page, queued=i >= args.training)
                await asyncio.sleep(3)
                r["while_training"] = server_stats(url.pid)
                results, peak = [], dict(r["while_training"])
                for _ in range(args.rounds):
                    for digit in DIGITS:
                        got = await asyncio.gather(*(draw_and_read(page, digit, args.timeout)
                                                     for page in pages))
                        results += [(digit, *g) for g in got]
                        stats = server_stats(url.pid)
                        peak = {k: max(peak[k], stats[k]) for k in peak}
                r["peak"] = peak
                r["still_training"] = sum(
                    [await page.get_by_role("button", name="Stop", exact=True).is_enabled()
                     for page in trainers])
                if board is not None:  # still refreshing after the class drew
                    r["board_shown"] = "300 runs in" in await board.inner_text("body")
                    await board.context.close()
                for context, _ in sessions:
                    await context.close()
                await browser.close()
            r["closed"] = server_stats(url.pid)
            await asyncio.sleep(args.settle)
            r["settled"] = server_stats(url.pid)
    seconds = sorted(s for _, _, s, _ in results if s is not None)
    r.update(sessions=args.sessions, training=args.training, queued=args.queued, board=args.board,
             drawings=len(results), wrong=sum(d != got for d, got, _, _ in results if got is not None),
             missing=sum(got is None for _, got, _, _ in results),
             strokes_redrawn=sum(lost for *_, lost in results),
             p50_s=statistics.median(seconds) if seconds else None,
             p95_s=seconds[min(len(seconds) - 1, math.ceil(0.95 * len(seconds)) - 1)] if seconds else None,
             settle_s=args.settle,
             seconds_by_drawing=[None if s is None else round(s, 2) for _, _, s, _ in results])
    r["idle_mb_per_session"] = (r["idle"]["rss_mb"] - r["baseline"]["rss_mb"]) / args.sessions
    r["training_mb_per_run"] = ((r["while_training"]["rss_mb"] - r["idle"]["rss_mb"]) / args.training
                                if args.training else 0.0)
    return r


def table(r: dict) -> str:
    def stats(s):
        return f"{s['rss_mb']:,.0f} MB, {s['threads']} threads"

    return "\n".join([
        f"| {r['sessions']} sessions, {r['training']} training, {r['queued']} queued | measured |",
        "|---|---|",
        f"| wrong / missing predictions | {r['wrong']} / {r['missing']} of {r['drawings']} |",
        f"| strokes the canvas widget did not take (drawn again) | {r['strokes_redrawn']} |",
        f"| mouse-up -> prediction | p50 {r['p50_s']:.2f} s, p95 {r['p95_s']:.2f} s |",
        f"| server before (warm, no session) | {stats(r['baseline'])} |",
        f"| with the sessions open, idle | {stats(r['idle'])} "
        f"({r['idle_mb_per_session']:.1f} MB per session) |",
        f"| while training | {stats(r['while_training'])} ({r['training_mb_per_run']:.0f} MB per run) |",
        f"| peak while drawing | {stats(r['peak'])} |",
        f"| all sessions just closed | {stats(r['closed'])} |",
        f"| {r['settle_s']:.0f} s after they closed | {stats(r['settled'])} |"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8, help="browser sessions that draw")
    parser.add_argument("--training", type=int, default=2, help="of them, sessions that train")
    parser.add_argument("--queued", type=int, default=1, help="of them, sessions whose run waits")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of three digits each")
    parser.add_argument("--timeout", type=float, default=20, help="seconds before a prediction "
                        "counts as missing")
    parser.add_argument("--settle", type=float, default=180, help="seconds to wait after closing")
    parser.add_argument("--ttl", type=int, default=150, help="MLP_DEMO_SESSION_TTL_S of the server")
    parser.add_argument("--board", action="store_true",
                        help="keep a class board open (60 students, 300 runs) as a projector would")
    args = parser.parse_args(argv)
    if args.training + args.queued > args.sessions:
        parser.error("--training plus --queued must not exceed --sessions")
    r = asyncio.run(measure(args))
    print(table(r), end="\n\n")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
