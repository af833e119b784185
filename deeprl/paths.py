"""Where deeprl keeps its data: DEEPRL_HOME (default ~/.cache/deeprl)."""

import os
from pathlib import Path


def home() -> Path:
    root = Path(os.environ.get("DEEPRL_HOME") or Path.home() / ".cache" / "deeprl").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def database_url() -> str:
    return os.environ.get("DEEPRL_DATABASE_URL") or f"sqlite:///{home() / 'deeprl.db'}"
