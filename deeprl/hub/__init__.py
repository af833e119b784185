"""Model hubs, as storage only: a local git-backed hub by default, the Hugging Face Hub on request.

A hub stores model repositories (design.md, "Model repository") under NAMESPACE/NAME ids and versions them:
every push is one commit. Two backends share one interface, `Hub` (deeprl/hub/base.py):

- `local` (deeprl/hub/local.py): DEEPRL_HOME/hub/NAMESPACE/NAME, each a git repository;
- `hf` (deeprl/hub/hf.py): the Hugging Face Hub through `huggingface_hub` (HF_ENDPOINT, HF_TOKEN / `hf auth login`).

deeprl/hub/card.py reads a repository's model card (bounded, for the leaderboard's verifier). What goes into a
repository (evaluate, record, write the card, push) is deeprl/publish.py, a layer above this one.
"""

from __future__ import annotations

import os
from pathlib import Path

from deeprl.errors import UserError
from deeprl.hub.base import Hub, ModelInfo, validate_repo_id

HUBS = ("local", "hf")


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


__all__ = ["HUBS", "Hub", "ModelInfo", "check_hub", "get_hub", "resolve_repo", "validate_repo_id"]
