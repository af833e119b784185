"""What every hub backend is: the `Hub` protocol, the `ModelInfo` a listing returns, and the repo-id rule.

The backends (local.py, hf.py) import this module, never the package's __init__, which imports them in
`get_hub`: so a backend and the code that picks one do not import each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from deeprl.errors import UserError

# The Hub's own rules (huggingface_hub.utils.validate_repo_id), plus a namespace, which deeprl always wants.
_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9])?$")


@dataclass
class ModelInfo:
    repo_id: str
    revision: str
    pushed_at: datetime  # UTC
    tags: list[str] = field(default_factory=list)


class Hub(Protocol):
    """A store of versioned model repositories; every method a caller of a backend may use."""

    name: str  # "local" or "hf"

    def location(self, repo_id: str) -> str:
        """Where the repo lives, for people: a folder or a URL."""

    def check_ready(self) -> None:
        """Raise a UserError when a push could not succeed (no token, say), before minutes of evaluation."""

    def push(self, folder: Path, repo_id: str, commit_message: str) -> str:
        """Commit the folder's files as the repo's next revision, in one commit; returns the commit id."""

    def resolve(self, repo_id: str, revision: str | None = None) -> Path:
        """A local folder holding the repo's files at `revision` (default: the latest); read it, never write."""

    def download(self, repo_id: str, revision: str | None = None, dest: Path | None = None) -> Path:
        """As `resolve`, or a copy of the files in `dest` when given."""

    def list_models(self, tag: str | None = None) -> list[ModelInfo]:
        """Every repo (with `tag` on its card when given), at its latest revision."""

    def revisions(self, repo_id: str) -> list[tuple[str, datetime, str]]:
        """(commit id, commit time in UTC, message) of every revision, newest first."""

    def received(self, repo_id: str) -> dict[str, datetime]:
        """{commit id: when this hub took it} where the hub recorded that itself (a commit's time is the pusher's
        word); {} when it recorded nothing."""


def validate_repo_id(repo_id: object) -> str:
    """NAMESPACE/NAME with the Hub's characters; anything that could escape the hub folder is refused."""
    if not isinstance(repo_id, str) or not repo_id:
        raise UserError("A repo id is needed, of the form NAMESPACE/NAME (for example alice/q-Taxi-v3).")
    parts = repo_id.split("/")
    bad = (
        len(parts) != 2
        or repo_id.startswith(("/", "~"))
        or "\\" in repo_id
        or any(not _PART.match(p) or ".." in p or "--" in p for p in parts)
        or repo_id.endswith(".git")
    )
    if bad:
        raise UserError(
            f"'{repo_id}' is not a valid repo id: use NAMESPACE/NAME, each part 1-96 letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit, with no '..' or '--'."
        )
    return repo_id
