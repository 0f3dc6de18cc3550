"""The browser's side of the pad: pipeline.js (preprocessing, the MLP's forward pass, softmax),
pad.js (the pad itself), pad.html and pad.css. The app's pad and the static site written by
`python -m mlp_demo web OUT/` use these same files; nothing here imports torch or Streamlit."""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent


def text(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


def module_js() -> str:
    """pipeline.js and pad.js as one ES module, whose default export mounts the pad."""
    return text("pipeline.js") + "\n" + text("pad.js")


SITE_README = """---
title: Draw a digit for an MLP
emoji: ✏️
colorFrom: red
colorTo: blue
sdk: static
pinned: false
---

The drawing pad of mlp_demo (an MLP trained on MNIST), running entirely in the browser: the
drawing is preprocessed the MNIST way and read by the network on every pen move. No server,
no training: "Open a model file" loads any .safetensors model the app lets you download.
"""


def write_site(out: str | Path, checkpoint: str | Path) -> list[Path]:
    """A self-contained static site in out/: index.html, the pad's module, its style and the
    model. It runs from any static host and offline once loaded, with no Python."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pad.js").write_text(module_js(), encoding="utf-8")
    (out / "pad.css").write_text(text("pad.css"), encoding="utf-8")
    shutil.copyfile(checkpoint, out / "model.safetensors")
    page = text("site.html").replace("<!-- PAD -->", text("pad.html"))
    (out / "index.html").write_text(page, encoding="utf-8")
    (out / "README.md").write_text(SITE_README, encoding="utf-8")
    return sorted(out.iterdir())
