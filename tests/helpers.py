"""Shared test helpers: a tiny MNIST written as real IDX files, drawn digits, canvas PNGs.
Tests import this module, never conftest or another test file."""

from __future__ import annotations

import base64
import io
import json
import math
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 28x28 uint8 images whose class k is a bright 6x6 block at one of ten places, plus noise:
    easy enough that a small MLP learns it in one epoch, so tests can check that learning works."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        top, left = 4 + 10 * (k // 5) + rng.integers(-1, 2), 2 + 5 * (k % 5) + rng.integers(-1, 2)
        images[i, top:top + 6, max(left, 0):left + 6] = 255
    return images, labels


def write_idx(folder: Path, name: str, array: np.ndarray) -> None:
    """The IDX format MNIST ships in: magic (0, 0, dtype 0x08, ndim), big-endian sizes, bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    (folder / name).write_bytes(header + array.astype(np.uint8).tobytes())


def make_tiny_mnist(root: Path, n_train: int = 1200, n_test: int = 300) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = synthetic_digits(n, seed)
        write_idx(raw, f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw, f"{prefix}-labels-idx1-ubyte", labels)
    return root


def drawn(shape: str, box=(90, 40, 190, 240), width=20, size=280) -> np.ndarray:
    """A white-on-black greyscale canvas with a '1' (a line), '0' (an ellipse) or '7'."""
    im = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(im)
    x0, y0, x1, y1 = box
    if shape == "1":
        d.line([((x0 + x1) / 2, y0), ((x0 + x1) / 2, y1)], fill=255, width=width)
    elif shape == "0":
        d.ellipse(box, outline=255, width=width)
    elif shape == "7":
        d.line([(x0, y0), (x1, y0), (x0 + (x1 - x0) * 0.35, y1)], fill=255, width=width, joint="curve")
    return np.asarray(im)


def png_data_url(image: np.ndarray | Image.Image) -> str:
    """What the pad sends: a PNG as a data URL."""
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def crafted(path, metadata=None, config=None, tensors=None):
    """A checkpoint file with the given metadata strings, config and tensors."""
    from safetensors.torch import save_file

    from mlp_demo import checkpoints
    from mlp_demo.config import TrainConfig
    from mlp_demo.model import MLP
    config = config or TrainConfig(hidden=(16,))
    meta = {"format": checkpoints.FORMAT, "config": json.dumps(config.to_dict()), **(metadata or {})}
    tensors = tensors if tensors is not None else MLP(config).state_dict()
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    return path


def hostile_files(folder):
    """Files a hostile visitor could have put in the folder (the browser test uploads them too)."""
    crafted(folder / "bad-metrics.safetensors", {"metrics": "[]"})
    crafted(folder / "bad-acc.safetensors", {"metrics": '{"test_acc": "x"}'})
    crafted(folder / "huge-meta.safetensors", {"pad": "x" * 2**21})
    import torch

    from mlp_demo.config import TrainConfig
    crafted(folder / "claims-big.safetensors", config=TrainConfig(hidden=(4096,) * 6),
            tensors={"0.weight": torch.zeros(4)})
    good = crafted(folder / "good.safetensors", {"metrics": '{"test_acc": 0.9}'})
    (folder / "truncated.safetensors").write_bytes(good.read_bytes()[:300])


class CuttableProxy:
    """A TCP proxy on a free local port in front of the app, whose connections can be cut:
    cut(seconds) drops every open connection and refuses new ones for that long, as a Wi-Fi
    blip would (the page is not reloaded: the browser reconnects by itself)."""

    def __init__(self, upstream_port: int):
        import socket
        import threading
        self.upstream_port, self.refuse_until, self.conns = upstream_port, 0.0, []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading
        import time
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.refuse_until:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink) -> None:
        import socket
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self, seconds: float) -> None:
        import socket
        import time
        self.refuse_until = time.monotonic() + seconds
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        time.sleep(seconds)

    def close(self) -> None:
        self.listener.close()


def serve_page(html: str):
    """A one-page HTTP server on localhost (another site than 127.0.0.1); returns (url, server)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://localhost:{server.server_address[1]}", server


def shot(page, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def vertical_stroke():
    return [(140, 40 + i * 10) for i in range(21)]


def circle():
    return [(140 + 70 * math.sin(t / 36 * 2 * math.pi), 140 - 100 * math.cos(t / 36 * 2 * math.pi))
            for t in range(38)]


def set_slider(page, name: str, key: str, expected: str) -> None:
    """Move a sidebar slider with a key press and wait until the server has the value: the
    page writes every setting into the query string as it reruns (share.keep_link_current)."""
    page.locator(f".st-key-hp_{name} input").focus()
    page.keyboard.press(key)
    page.wait_for_function(
        "([name, value]) => new URLSearchParams(location.search).get(name) === value",
        arg=[name, expected], timeout=30_000)


def settled(page, timeout_ms: float = 60_000) -> None:
    """Wait until no page run is in flight (Streamlit marks its root with the script's state),
    as a person acts on a page that has finished drawing: an action sent while a run redraws the
    element it targets can land on the element being replaced."""
    page.wait_for_function("() => document.querySelector('[data-testid=stApp]')"
                           "?.dataset.testScriptState === 'notRunning'", timeout=timeout_ms)


def train_slowly(page) -> None:
    """The most epochs and the smallest batch, then Train: a run that lasts until a test stops
    it (or the server's time limit), on any machine."""
    set_slider(page, "epochs", "End", "200")
    set_slider(page, "batch_size", "Home", "16")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_role("button", name="Stop", exact=True).and_(
        page.locator("button:enabled")).wait_for(timeout=60_000)


def prediction(page) -> str:
    text = page.get_by_text("Prediction:")
    text.wait_for(timeout=20_000)
    return text.inner_text().strip()


def start_class(env: dict) -> dict:
    """`python -m mlp_demo class new --json` against the database env names: code and paths."""
    import os
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "mlp_demo", "class", "new", "--json"], cwd=REPO,
                          env={**os.environ, **env}, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])
