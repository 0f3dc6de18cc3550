"""The command line: python -m mlp_demo train | evaluate | predict | teach | class | board
(--help on each)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import checkpoints
from .config import PRESETS, TrainConfig, field_meta
from .server.db import DatabaseError
from .server.settings import Settings


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit status 2."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.command(args)
    except (UserError, ValueError, FileNotFoundError, DatabaseError) as e:  # CheckpointError,
        # ConfigError, DataMissing, ClassError, SchemaMismatch
        print(f"mlp_demo: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlp_demo: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlp_demo",
                                     description="Train and use an MLP on MNIST.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train a model and write a checkpoint",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.add_argument("--preset", choices=list(PRESETS), default="default",
                       help="start from these settings; the options below override them")
    for name, default in TrainConfig().to_dict().items():
        add_config_option(train, name, default)
    train.add_argument("--out", type=Path, default=Path("checkpoints/model.safetensors"),
                       help="where to write the checkpoint")
    train.add_argument("--json", action="store_true",
                       help="end stdout with one JSON line of final metrics")
    train.set_defaults(command=cmd_train)

    evaluate = sub.add_parser("evaluate", help="test accuracy of a checkpoint")
    evaluate.add_argument("checkpoint", nargs="?", type=Path, default=checkpoints.DEFAULT_CHECKPOINT,
                          help="checkpoint file (default: the shipped model)")
    evaluate.add_argument("--json", action="store_true", help="end stdout with one JSON line")
    evaluate.set_defaults(command=cmd_evaluate)

    predict = sub.add_parser("predict", help="classify images of handwritten digits")
    predict.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    predict.add_argument("--checkpoint", type=Path, default=checkpoints.DEFAULT_CHECKPOINT,
                         help="checkpoint file (default: the shipped model)")
    predict.add_argument("--json", action="store_true", help="one JSON object per image and line")
    predict.set_defaults(command=cmd_predict)

    klass = sub.add_parser("class", help="start a class (its board is kept in MLP_DEMO_DATABASE_URL)")
    klass.add_argument("action", choices=["new"], help="new: a join code and a teacher link")
    klass.add_argument("--json", action="store_true",
                       help='print {"code", "join_path", "teacher_path"} (paths: add to the app\'s URL)')
    klass.set_defaults(command=cmd_class)

    board = sub.add_parser("board", help="print a class's board, hidden entries included")
    board.add_argument("code", help="the class's join code")
    board.add_argument("--json", action="store_true", help="one JSON object per run and line")
    board.set_defaults(command=cmd_board)

    site = sub.add_parser("web", help="write the pad as a static site (no server, no training)",
                          description="A self-contained static site: the drawing pad running the "
                          "app's own preprocessing and forward pass in the browser, a model, and "
                          "'Open a model file' for any checkpoint the app downloads. Serve OUT "
                          "from any static host (a static Hugging Face Space: its README.md is "
                          "included), or open it offline once loaded.")
    site.add_argument("out", type=Path, metavar="OUT", help="the folder to write")
    site.add_argument("--checkpoint", type=Path, default=checkpoints.DEFAULT_CHECKPOINT,
                      help="the model the page opens with (default: the shipped model)")
    site.set_defaults(command=cmd_web)

    from .teach import TeachConfig
    defaults = TeachConfig()
    teach = sub.add_parser("teach", help="fine-tune a model on your own labelled digits",
                           description="Fine-tune a checkpoint on your own handwriting (an "
                           "'image,label' CSV; image paths absolute or relative to the CSV), "
                           "mixed with MNIST replay so that it keeps reading MNIST.")
    teach.add_argument("--checkpoint", type=Path, default=checkpoints.DEFAULT_CHECKPOINT,
                       help="the model to teach (default: the shipped model)")
    teach.add_argument("--examples", type=Path, required=True,
                       help="examples.csv (a header 'image,label', then image paths and digits) "
                            "or the app's examples zip")
    teach.add_argument("--out", type=Path, required=True, help="where to write the taught checkpoint")
    teach.add_argument("--steps", type=int, default=defaults.steps,
                       help=f"Adam steps (default: {defaults.steps})")
    teach.add_argument("--lr", type=float, default=defaults.lr,
                       help=f"learning rate (default: {defaults.lr:g})")
    teach.add_argument("--replay", type=float, default=defaults.replay,
                       help=f"share of each batch taken from MNIST (default: {defaults.replay:g})")
    teach.add_argument("--json", action="store_true", help="end stdout with one JSON line")
    teach.set_defaults(command=cmd_teach)
    return parser


def add_config_option(parser, name: str, default) -> None:
    """One flag per TrainConfig field. Unset flags stay out of args (SUPPRESS), so a preset
    can fill them; the help still states the default."""
    meta, flag = field_meta(name), "--" + name.replace("_", "-")
    allowed = f"; {meta['low']:g} to {meta['high']:g}" if meta["low"] is not None else ""
    shown = " ".join(map(str, default)) if isinstance(default, list) else default
    kwargs = dict(default=argparse.SUPPRESS, help=f"{meta['help']} (default: {shown}{allowed})")
    if isinstance(default, bool):
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
    elif isinstance(default, list):
        parser.add_argument(flag, type=int, nargs="*", metavar="N", **kwargs)
    else:
        parser.add_argument(flag, type=type(default), choices=meta["choices"], **kwargs)


def cmd_train(args) -> int:
    from .data import load_mnist, split_mnist
    from .train import Trainer, resolve_device

    given = {name: getattr(args, name) for name in TrainConfig().to_dict() if hasattr(args, name)}
    config = TrainConfig.from_dict({**PRESETS[args.preset].to_dict(), **given})
    resolve_device(config.device)  # a missing GPU is reported before a slow data load
    data = split_mnist(*load_mnist(Settings.from_env().mnist_root), config.val_size, config.seed)
    trainer = Trainer(config, data)
    print(f"training {trainer.model.n_params():,} parameters on {trainer.device}: "
          f"{len(data.train_x):,} images, {trainer.total_steps:,} steps", file=sys.stderr)
    trainer.on("step", ProgressBar(trainer.total_steps))
    trainer.on("epoch", print_epoch)
    status = trainer.run()
    if status == "diverged":
        raise UserError(trainer.message)
    checkpoints.save(args.out, trainer.model, config, trainer.metrics, trainer.train_seconds)
    result = {**trainer.metrics, "status": status, "train_seconds": trainer.train_seconds,
              "checkpoint": str(args.out)}
    print(json.dumps(result) if args.json else
          f"test accuracy {result['test_acc']:.4f} after {result['train_seconds']:.1f}s; "
          f"saved {args.out}")
    return 0


def cmd_web(args) -> int:
    from . import web

    checkpoints.load(args.checkpoint)  # the strict reader: only a model the pad can run
    for path in web.write_site(args.out, args.checkpoint):
        print(path)
    return 0


def cmd_evaluate(args) -> int:
    from .data import load_mnist, normalize
    from .model import predict_proba
    from .train import evaluate

    model, info = checkpoints.load(args.checkpoint)
    _, _, test_x, test_y = load_mnist(Settings.from_env().mnist_root)
    loss, accuracy = evaluate(model, test_x, test_y)
    predicted = predict_proba(model, normalize(test_x)).argmax(1)
    per_class = [(predicted[test_y == d] == d).float().mean().item() for d in range(10)]
    result = {"checkpoint": str(args.checkpoint), "test_accuracy": accuracy, "test_loss": loss,
              "per_class_accuracy": per_class}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.checkpoint}: test accuracy {accuracy:.4f} (loss {loss:.4f})")
        print("per class: " + "  ".join(f"{d}:{a:.3f}" for d, a in enumerate(per_class)))
    return 0


def cmd_predict(args) -> int:
    from PIL import Image, UnidentifiedImageError

    from .drawing import predict_image

    model, _ = checkpoints.load(args.checkpoint)
    for path in args.images:
        try:
            with Image.open(path) as im:
                pixels = np.asarray(im.convert("RGBA" if "A" in im.getbands() else "L"))
        except (OSError, UnidentifiedImageError) as e:
            raise UserError(f"cannot read image {path}: {e}") from None
        probs, _ = predict_image(model, pixels)
        digit = None if probs is None else int(probs.argmax())
        if args.json:
            print(json.dumps({"file": str(path), "prediction": digit,
                              "probabilities": None if probs is None else probs.round(6).tolist()}))
        else:
            print(f"{path}: " + ("no digit found" if digit is None else
                                 f"{digit} ({probs[digit]:.1%})"))
    return 0


def cmd_teach(args) -> int:
    from .data import load_mnist
    from .examples import read_examples
    from .teach import TeachConfig, teach_and_measure

    config = TeachConfig(steps=args.steps, lr=args.lr, replay=args.replay).validate()
    images, labels, _ = read_examples(args.examples)  # every row checked before any work
    model, info = checkpoints.load(args.checkpoint)
    raw = load_mnist(Settings.from_env().mnist_root)
    taught, result = teach_and_measure(model, images, labels, raw, config)
    metrics = {**info.metrics, "test_acc": result["test_accuracy_after"]}
    checkpoints.save(args.out, taught, info.config, metrics, (info.train_seconds or 0) + result["seconds"])
    if args.json:
        print(json.dumps(result))
    else:
        print(f"taught {result['examples']} examples in {result['seconds']:.1f}s: your examples "
              f"{result['examples_accuracy_before']:.1%} -> {result['examples_accuracy_after']:.1%}, "
              f"MNIST test {result['test_accuracy_before']:.2%} -> {result['test_accuracy_after']:.2%}; "
              f"saved {args.out}")
    return 0


def open_classes():
    """The class boards in the database the app uses (MLP_DEMO_DATABASE_URL, else the SQLite
    file beside the models folder)."""
    from .server import db
    from .server.classes import Classes

    settings = Settings.from_env()
    return Classes(db.connect(settings.database()), settings.limits)


def cmd_class(args) -> int:
    new = open_classes().create()
    if args.json:
        print(json.dumps(new.to_dict()))
    else:
        print(f"class {new.code}\njoin:    {new.join_path}\nteacher: {new.teacher_path}  (keep it to "
              "yourself)\nAdd each to the app's address, e.g. http://localhost:8501/" + new.join_path)
    return 0


def cmd_board(args) -> int:
    from .server.board import leaderboard

    board = open_classes().board(args.code, include_hidden=True)
    if args.json:
        for entry in board.entries:
            print(json.dumps(entry.to_json()))
        return 0
    print(f"class {board.code}: {board.students} students, {len(board.entries)} runs"
          + (" (locked)" if board.locked else ""))
    for rank, e in enumerate(leaderboard(board), start=1):
        test = "n/a" if e.test_acc is None else f"{e.test_acc:.2%}"
        print(f"{rank:>3}. {e.name!r:<28} {test:>7}  {e.kind:<8} {e.status:<8} {e.seconds:7.1f}s"
              + ("  hidden" if e.hidden else ""))
    return 0


def print_epoch(m: dict) -> None:
    val = "n/a" if m["val_acc"] is None else f"{m['val_acc']:.4f}"
    print(f"\repoch {m['epoch']:>3}  train loss {m['train_loss']:.4f}  acc {m['train_acc']:.4f}  "
          f"val acc {val}  test acc {m['test_acc']:.4f}  {m['epoch_seconds']:.1f}s", file=sys.stderr)


class ProgressBar:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, total: int, width: int = 30):
        self.total, self.width, self.last = total, width, 0.0
        self.enabled = sys.stderr.isatty()

    def __call__(self, m: dict) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.1 and m["step"] < self.total):
            return
        self.last = now
        done = m["step"] / self.total
        bar = "#" * int(done * self.width)
        print(f"\r[{bar:<{self.width}}] {done:4.0%}  epoch {m['epoch']}  loss {m['loss']:.4f}  "
              f"{m['samples_per_s']:,.0f} samples/s", end="", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
