"""Model hubs: a local git-backed hub by default, the Hugging Face Hub on request (see the Hub issue)."""

from __future__ import annotations

from pathlib import Path

from deeprl.errors import UserError
from deeprl.paths import home


def resolve_repo(repo_id: str, revision: str | None = None) -> Path:
    path = home() / "hub" / repo_id
    if not path.is_dir():
        raise UserError(f"No repo '{repo_id}' in the local hub ({home() / 'hub'}); push one with 'deeprl push'.")
    return path
