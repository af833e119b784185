"""The Hugging Face Hub backend: `huggingface_hub.HfApi` against HF_ENDPOINT (default https://huggingface.co).

The token comes from the usual places (HF_TOKEN, `hf auth login`). Downloads go to the Hugging Face cache (or a
folder of the user's choice) and are only ever read as safetensors/JSON/text: nothing downloaded is executed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from deeprl.errors import UserError
from deeprl.hub.base import ModelInfo, validate_repo_id

DEFAULT_ENDPOINT = "https://huggingface.co"
NO_TOKEN = "No Hugging Face token found: run `hf auth login` (or set the HF_TOKEN environment variable) and push again."


def endpoint() -> str:
    # read at call time: huggingface_hub reads HF_ENDPOINT once at import, tests and users may set it later
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


@contextmanager
def _errors(repo_id: str | None = None, revision: str | None = None) -> Iterator[None]:
    """huggingface_hub's exceptions -> one sentence each."""
    import httpx2
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except RevisionNotFoundError:
        raise UserError(f"Repo '{repo_id}' on {endpoint()} has no revision '{revision}'.") from None
    except RepositoryNotFoundError:
        raise UserError(
            f"No repo '{repo_id}' on {endpoint()} (or it is private and your token cannot see it)."
        ) from None
    except LocalEntryNotFoundError:
        raise UserError(
            f"Could not download '{repo_id}' from {endpoint()}: the Hub could not be reached and nothing is cached."
        ) from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise UserError(
                f"{endpoint()} refused the token ({status}): run `hf auth login` with a token that has "
                "write access, or set HF_TOKEN."
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(f"The Hugging Face Hub answered with an error: {first}") from None
    except (httpx2.ConnectError, httpx2.TimeoutException) as exc:
        raise UserError(
            f"Could not reach {endpoint()} ({exc.__class__.__name__}); check the network or HF_ENDPOINT."
        ) from None


def _utc(dt: datetime | None) -> datetime:
    if dt is None:
        return datetime.fromtimestamp(0, tz=UTC)
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


class HFHub:
    name = "hf"

    def __init__(self) -> None:
        from huggingface_hub import HfApi

        self.endpoint = endpoint()
        self.api = HfApi(endpoint=self.endpoint)

    def location(self, repo_id: str) -> str:
        return f"{self.endpoint}/{repo_id}"

    def token(self) -> str | None:
        from huggingface_hub import get_token

        return get_token()

    def check_ready(self) -> None:
        if not self.token():
            raise UserError(NO_TOKEN)

    def push(self, folder: Path, repo_id: str, commit_message: str) -> str:
        validate_repo_id(repo_id)
        self.check_ready()
        with _errors(repo_id):
            self.api.create_repo(repo_id, repo_type="model", exist_ok=True)
            info = self.api.upload_folder(
                repo_id=repo_id, folder_path=str(folder), repo_type="model", commit_message=commit_message
            )
        return info.oid

    def resolve(self, repo_id: str, revision: str | None = None) -> Path:
        return self.download(repo_id, revision)

    def download(self, repo_id: str, revision: str | None = None, dest: Path | None = None) -> Path:
        from huggingface_hub import snapshot_download

        validate_repo_id(repo_id)
        with _errors(repo_id, revision):
            path = snapshot_download(
                repo_id,
                repo_type="model",
                revision=revision,
                endpoint=self.endpoint,
                cache_dir=os.environ.get("HF_HUB_CACHE") or None,
                local_dir=str(dest) if dest is not None else None,
            )
        return Path(path)

    def list_models(self, tag: str | None = None) -> list[ModelInfo]:
        with _errors():
            models = self.api.list_models(filter=tag, expand=["sha", "lastModified", "tags"])
            return [
                ModelInfo(m.id, m.sha or "", _utc(m.last_modified or m.created_at), list(m.tags or [])) for m in models
            ]

    def revisions(self, repo_id: str) -> list[tuple[str, datetime, str]]:
        validate_repo_id(repo_id)
        with _errors(repo_id):
            return [(c.commit_id, _utc(c.created_at), c.title) for c in self.api.list_repo_commits(repo_id)]

    def received(self, repo_id: str) -> dict[str, datetime]:
        """{}: this backend keeps no receipts, so the leaderboard takes the first index run that saw a revision as
        the time it arrived."""
        return {}
