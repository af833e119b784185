"""Model hubs: a local git-backed hub by default, the Hugging Face Hub on request.

A hub stores model repositories (design.md, "Model repository") under NAMESPACE/NAME ids and versions them:
every push is one commit. Two backends share one small interface, `Hub`:

- `local` (deeprl/hub/local.py): DEEPRL_HOME/hub/NAMESPACE/NAME, each a git repository;
- `hf` (deeprl/hub/hf.py): the Hugging Face Hub through `huggingface_hub` (HF_ENDPOINT, HF_TOKEN / `hf auth login`).

`push_model` (deeprl/hub/package.py) turns a run folder into a repository: evaluate, record, card, commit.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from deeprl.errors import UserError

HUBS = ("local", "hf")

# The Hub's own rules (huggingface_hub.utils.validate_repo_id), plus a namespace, which deeprl always wants.
_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9])?$")


@dataclass
class ModelInfo:
    repo_id: str
    revision: str
    pushed_at: datetime  # UTC
    tags: list[str] = field(default_factory=list)


class Hub(Protocol):
    name: str

    def push(self, folder: Path, repo_id: str, commit_message: str) -> str: ...

    def download(self, repo_id: str, revision: str | None = None, dest: Path | None = None) -> Path: ...

    def list_models(self, tag: str | None = None) -> list[ModelInfo]: ...

    def revisions(self, repo_id: str) -> list[tuple[str, datetime, str]]: ...

    def location(self, repo_id: str) -> str: ...


def validate_repo_id(repo_id) -> str:
    """NAMESPACE/NAME with the Hub's characters; anything that could escape the hub folder is refused."""
    if not isinstance(repo_id, str) or not repo_id:
        raise UserError("A repo id is needed, of the form NAMESPACE/NAME (for example alice/q-Taxi-v3).")
    parts = repo_id.split("/")
    bad = (len(parts) != 2 or repo_id.startswith(("/", "~")) or "\\" in repo_id
           or any(not _PART.match(p) or ".." in p or "--" in p for p in parts) or repo_id.endswith(".git"))
    if bad:
        raise UserError(f"'{repo_id}' is not a valid repo id: use NAMESPACE/NAME, each part 1-96 letters, digits, "
                        "'-', '_' or '.', starting and ending with a letter or digit, with no '..' or '--'.")
    return repo_id


def check_hub(name: str | None) -> str:
    name = name or os.environ.get("DEEPRL_HUB") or "local"
    if name not in HUBS:
        raise UserError(f"Unknown hub '{name}'; use --hub local (the default, on this disk) or --hub hf.")
    return name


def get_hub(name: str | None = "local") -> Hub:
    name = check_hub(name)
    if name == "hf":
        from deeprl.hub.hf import HFHub

        return HFHub()
    from deeprl.hub.local import LocalHub

    return LocalHub()


def resolve_repo(repo_id: str, revision: str | None = None, hub: str | None = "local") -> Path:
    """A local folder holding `repo_id`'s files at `revision` (default: the latest)."""
    validate_repo_id(repo_id)
    return get_hub(hub).resolve(repo_id, revision)


def push_model(model_dir, repo_id: str, hub: str | None = "local", commit_message: str | None = None,
               record_video: bool = True, n_eval_episodes: int | None = None, seed: int = 0, timings: dict | None = None) -> dict:
    """Evaluate, record, write the card and commit a model folder to a hub (see deeprl/hub/package.py)."""
    from deeprl.hub.package import push_model as _push

    return _push(model_dir, repo_id, hub=hub, commit_message=commit_message, record_video=record_video,
                 n_eval_episodes=n_eval_episodes, seed=seed, timings=timings)


__all__ = ["HUBS", "Hub", "ModelInfo", "get_hub", "push_model", "resolve_repo", "validate_repo_id"]
