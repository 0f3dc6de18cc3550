"""Every environment variable the app and the CLI read, in one place: its name, its default and
the message for a value that cannot be used. Nothing else in the package reads the environment;
the core takes paths as arguments (a student's `load_mnist("./data")` needs no variable).

    MNIST_ROOT              a torchvision root holding MNIST/raw/*          (./data)
    MLP_DEMO_CHECKPOINTS    the folder saved and uploaded models go to      (checkpoints/)
    MLP_DEMO_DATABASE_URL   the class boards' and models' database          (SQLite beside the folder)
    MLP_DEMO_RAY_ADDRESS    train on this Ray cluster instead of in-process (unset)
    MLP_DEMO_RAY_CPUS/GPUS  what one run asks of the cluster                (1 / 0)
    MLP_DEMO_<LIMIT>        the public server's limits (limits.Limits)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..checkpoints import CHECKPOINT_DIR
from ..data import DEFAULT_ROOT
from .limits import Limits


@dataclass(frozen=True)
class Settings:
    mnist_root: str = DEFAULT_ROOT
    checkpoints: Path = CHECKPOINT_DIR
    database_url: str = ""  # empty: an SQLite file beside the checkpoints folder
    ray_address: str | None = None
    ray_cpus: float = 1.0
    ray_gpus: float = 0.0
    limits: Limits = Limits()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """ValueError naming the variable and the fix for a value that cannot be used."""
        env = os.environ if env is None else env
        return cls(mnist_root=env.get("MNIST_ROOT", "").strip() or DEFAULT_ROOT,
                   checkpoints=Path(env.get("MLP_DEMO_CHECKPOINTS", "").strip() or CHECKPOINT_DIR),
                   database_url=env.get("MLP_DEMO_DATABASE_URL", "").strip(),
                   ray_address=env.get("MLP_DEMO_RAY_ADDRESS", "").strip() or None,
                   ray_cpus=_amount(env, "MLP_DEMO_RAY_CPUS", 1.0),
                   ray_gpus=_amount(env, "MLP_DEMO_RAY_GPUS", 0.0),
                   limits=Limits.from_env(env))

    def database(self) -> str:
        """MLP_DEMO_DATABASE_URL, else an SQLite file beside the models folder
        (MLP_DEMO_CHECKPOINTS=/srv/models gives /srv/models.sqlite3)."""
        if self.database_url:
            return self.database_url
        folder = self.checkpoints.resolve()
        return f"sqlite:///{folder.parent / (folder.name + '.sqlite3')}"


def _amount(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw[:40]!r} is not a number (e.g. {name}=1)") from None
    if not 0 <= value < 1024:
        raise ValueError(f"{name} must be from 0 to 1024, not {raw[:40]}")
    return value

