"""A lecture hall on one machine: python -m bench.hall [--replicas 2] [--sessions 6] [--training 2]

Starts what deploy/docker-compose.yml runs, without Docker: PostgreSQL (as the postgres user), a
local Ray head, N app processes sharing them and one models folder, and nginx with
deploy/nginx.conf, its upstream pointed at the replicas' ports. Then, through the proxy,
bench.load's browser sessions: all draw a 1, a 0 and a 7 at once, twice, while K of them train
(on Ray). Then the checks across replicas:

- saved_on_a_listed_on_b: a model uploaded through replica A is listed, and its owner's, on B;
- board_has_both: one class board holds runs finished through A and through B;
- kill_loses_nothing: replica A killed, its visitor's model and the board are intact, and the
  visitor's next page load through the proxy lands on a live replica.

Prints one JSON line: sessions_per_replica, wrong and missing predictions, p50_s and p95_s from
mouse-up to prediction, ray_runs (where each run trained: pid and node, never a replica's
process) and the checks; and single_process, the same class on one app process (training in
its threads, no proxy) run first in the same invocation, for comparison. Needs root
(PostgreSQL), nginx, Ray and Chromium, as `.ci/run` installs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import statistics
import tempfile
import urllib.request
from pathlib import Path

from . import services
from .browser import CHROMIUM, FLAGS, serve_app
from .load import DIGITS, draw_and_read, open_session, press_train, set_epochs, wait_text

REPO = Path(__file__).resolve().parent.parent
COOKIE = "mlp_demo_visitor"


def proxy_config(replica_ports: list[int], listen: int) -> str:
    """deploy/nginx.conf with this machine's ports, and a header naming the replica that answered."""
    conf = (REPO / "deploy" / "nginx.conf").read_text()
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;" for p in replica_ports)
    conf = re.sub(r"(upstream mlp_demo_app \{\n\s*hash \$visitor consistent;\n)(.*?)(\n    \})",
                  lambda m: m.group(1) + servers + m.group(3), conf, flags=re.S)
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    replica_header = "\n            add_header X-Replica $upstream_addr always;"
    return conf.replace("proxy_pass http://mlp_demo_app;", "proxy_pass http://mlp_demo_app;" + replica_header)


def replica_of(proxy: str, visitor: str) -> str:
    """The replica (127.0.0.1:port) the proxy sends this visitor's requests to."""
    request = urllib.request.Request(f"{proxy}/_stcore/health",
                                     headers={"Cookie": f"{COOKIE}={visitor}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["X-Replica"].split(",")[-1].strip()


async def run_state(page) -> str:
    """What a training tab shows of its run: its step, or how it ended."""
    text = await page.inner_text("body")
    found = re.search(r"step [\d,]+/[\d,]+|finished|stopped|failed[^\n]{0,80}|lost[^\n]{0,80}", text)
    return found.group(0) if found else "?"


async def with_cookie(browser, visitor: str):
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    await context.add_cookies([{"name": COOKIE, "value": visitor, "domain": "127.0.0.1", "path": "/"}])
    return context


async def open_page(context, url: str):
    page = await context.new_page()
    await page.goto(url)
    await wait_text(page, "Draw a digit on the black pad", 120_000)
    return page


async def is_mine(page, name: str, timeout_ms: float = 30_000) -> bool:
    try:
        await page.wait_for_function(
            "n => { const i = document.querySelector('.st-key-delete_name input');"
            " return i && i.value === n; }",
            arg=name, timeout=timeout_ms)
        return True
    except Exception:  # noqa: BLE001 - not listed as theirs in time
        return False


async def join_and_finish_a_run(browser, url: str, code: str, name: str):
    """A student on one replica joins the class and finishes a 1-epoch run (trained on Ray)."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await open_page(context, f"{url}?class={code}")
    try:
        await page.get_by_label("Your name on the board").fill(name)
    except Exception:
        await page.screenshot(path=f"/tmp/hall-join-{name}.png", full_page=True)
        raise
    await page.get_by_role("button", name="Join", exact=True).click()
    await wait_text(page, "You are on the board", 60_000)
    await set_epochs(page, "Home", "1")
    await page.get_by_role("button", name="Train", exact=True).click()
    await wait_text(page, "is on the class board", 600_000)
    return context


async def drive(browser, url: str, args) -> dict:
    """bench.load's class on one URL: the sessions open, K train, all draw a 1, a 0 and a 7 at
    once, args.rounds times. Wrong and missing predictions, p50 and p95 from mouse-up to
    prediction, each trainer's state at the end, and the sessions' visitor cookies."""
    sessions = [await open_session(browser, url) for _ in range(args.sessions)]
    visitors = [next((c["value"] for c in await ctx.cookies() if c["name"] == COOKIE), None)
                for ctx, _ in sessions]
    pages = [page for _, page in sessions]
    for page in pages[:args.training]:
        await press_train(page, queued=False)
    results = []
    for _ in range(args.rounds):
        for digit in DIGITS:
            got = await asyncio.gather(*(draw_and_read(page, digit, args.timeout) for page in pages))
            results += [(digit, *g) for g in got]
    trainers = [await run_state(page) for page in pages[:args.training]]
    for page in pages[:args.training]:
        stop = page.get_by_role("button", name="Stop", exact=True)
        if await stop.is_enabled():
            await stop.click()
    for context, _ in sessions:
        await context.close()
    seconds = sorted(s for _, _, s, _ in results if s is not None)
    return {"visitors": visitors, "trainers": trainers, "drawings": len(results),
            "wrong": sum(d != g for d, g, _, _ in results if g is not None),
            "missing": sum(g is None for _, g, _, _ in results),
            "p50_s": round(statistics.median(seconds), 2) if seconds else None,
            "p95_s": round(seconds[min(len(seconds) - 1, math.ceil(0.95 * len(seconds)) - 1)], 2)
            if seconds else None}


async def single_process(args, folder: Path) -> dict:
    """The same class on one app process, training in its own threads: the figures the hall is
    compared with, measured in the same run, before the hall starts."""
    from playwright.async_api import async_playwright

    env = {"MLP_DEMO_CHECKPOINTS": str(folder / "single"), "MLP_DEMO_MAX_JOBS": str(max(args.training, 2))}
    with serve_app(env) as url:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            drawn = await drive(browser, url, args)
            await browser.close()
    drawn.pop("visitors")
    return drawn


async def hall(args, database: str, ray_address: str, folder: Path) -> dict:
    from playwright.async_api import async_playwright

    from mlp_demo import checkpoints
    from mlp_demo.config import TrainConfig
    from mlp_demo.model import MLP
    from mlp_demo.server import db
    from mlp_demo.server.classes import Classes
    from mlp_demo.server.limits import Limits
    from mlp_demo.server.records import ModelRecords

    env = {**services.RAY_ENV, "MLP_DEMO_DATABASE_URL": database, "MLP_DEMO_RAY_ADDRESS": ray_address,
           "MLP_DEMO_CHECKPOINTS": str(folder / "models"), "MLP_DEMO_MAX_JOBS": str(max(args.training, 2))}
    r: dict = {"replicas": args.replicas, "sessions": args.sessions, "training": args.training}
    if args.single:
        r["single_process"] = await single_process(args, folder)
    with contextlib.ExitStack() as stack:
        replicas = [stack.enter_context(serve_app(env)) for _ in range(args.replicas)]
        ports = [int(url.rsplit(":", 1)[1]) for url in replicas]
        listen = services.free_port()
        stack.enter_context(services.nginx(proxy_config(ports, listen)))
        proxy = f"http://127.0.0.1:{listen}"
        services.wait_for_health(proxy)
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            # The class draws through the proxy, K of them training on Ray meanwhile.
            drawn = await drive(browser, proxy, args)
            where = [replica_of(proxy, v) for v in drawn.pop("visitors")]
            r["sessions_per_replica"] = [where.count(f"127.0.0.1:{port}") for port in ports]
            r.update(drawn)

            # A model uploaded through A is listed, and its owner's, through B.
            visitor = "hall_visitor_0123456789abcdef"
            config = TrainConfig(hidden=(16,))
            model_file = folder / "hall-check.safetensors"
            checkpoints.save(model_file, MLP(config), config, {"test_acc": 0.5}, 1.0)
            ana = await with_cookie(browser, visitor)
            on_a = await open_page(ana, replicas[0])
            uploader = on_a.locator('[data-testid="stFileUploaderDropzoneInput"]').first
            await uploader.set_input_files(str(model_file))
            await wait_text(on_a, "Added hall-check", 60_000)
            on_b = await open_page(ana, replicas[1])
            r["saved_on_a_listed_on_b"] = await is_mine(on_b, "hall-check")

            # One board, runs finished through both replicas.
            engine = db.connect(database)
            classes = Classes(engine, Limits())
            new = classes.create()
            try:
                students = await asyncio.gather(
                    join_and_finish_a_run(browser, replicas[0], new.code, "Ada"),
                    join_and_finish_a_run(browser, replicas[1], new.code, "Ben"))
            except Exception as e:  # noqa: BLE001 - reported, and the other checks still run
                r["board_error"], students = repr(e)[:300], []
            board = classes.board(new.code)
            r["board_has_both"] = sorted(e.name for e in board.entries) == ["Ada", "Ben"]

            # Replica A killed: nothing of its visitors is lost, and they land on a live one.
            replicas[0].process.kill()
            replicas[0].process.wait(30)
            record = ModelRecords(engine).get("hall-check")
            intact = (record is not None and record.owner == visitor and record.file is not None
                      and (folder / "models" / record.file).exists()
                      and len(Classes(engine, Limits()).board(new.code).entries) == 2)
            again = await with_cookie(browser, visitor)
            try:
                page = await open_page(again, proxy)
                landed = await is_mine(page, "hall-check", 60_000)
            except Exception:  # noqa: BLE001 - the page never came back
                landed = False
            r["kill_loses_nothing"] = intact and landed
            for context in (ana, again, *students):
                await context.close()
            await browser.close()
            engine.dispose()

        import os

        import ray
        os.environ.update(services.RAY_ENV)
        ray.init(address=ray_address, namespace="mlp_demo", log_to_driver=False)
        from mlp_demo.server.cluster import NAMESPACE, QUEUE_NAME
        queue = ray.get_actor(QUEUE_NAME, namespace=NAMESPACE)
        r["ray_runs"] = ray.get(queue.workers.remote())
        ray.shutdown()
        replica_pids = {url.pid for url in replicas}
        r["ray_runs_outside_replicas"] = bool(r["ray_runs"]) and all(
            run["pid"] not in replica_pids for run in r["ray_runs"])
    return r


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--training", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60, help="seconds a prediction may take")
    parser.add_argument("--no-single", dest="single", action="store_false",
                        help="skip the single-process run the hall is compared with")
    args = parser.parse_args(argv)
    if args.replicas < 2:
        parser.error("a hall has at least 2 replicas")
    with tempfile.TemporaryDirectory() as tmp, services.postgres() as database, \
            services.ray_head(cpus=2) as ray_address:
        r = asyncio.run(hall(args, database, ray_address, Path(tmp)))
    print(json.dumps(r))


if __name__ == "__main__":
    main()
