"""The Hugging Face Hub backend: `huggingface_hub.HfApi` against HF_ENDPOINT (default https://huggingface.co).

The token comes from the usual places (HF_TOKEN, `hf auth login`). Downloads go to the Hugging Face cache (or a
folder of the user's choice) and are only ever read as safetensors/JSON/text: nothing downloaded is executed.

The leaderboard lists the Hub as the course's leaderboard did (`search_models`: tags, an author, a search) and
fetches only the files its verifier reads (`files` gives a revision's top-level files with their sizes from the
tree listing; `download_files` fetches the chosen ones): a course repo also holds a replay video and an unzipped
copy of its model, which the leaderboard never needs.
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
        return self.search_models(tag)

    def search_models(
        self,
        tag: str | None = None,
        *,
        filters: tuple[str, ...] = (),
        author: str | None = None,
        search: str | None = None,
        limit: int | None = None,
    ) -> list[ModelInfo]:
        """The models with `tag` and every one of `filters` among their tags, by `author`, whose id contains
        `search` (the Hub's own query parameters); at most `limit` of them."""
        wanted = [t for t in (tag, *filters) if t]
        with _errors():
            models = self.api.list_models(
                filter=wanted or None,
                author=author,
                search=search,
                limit=limit,
                expand=["sha", "lastModified", "tags"],
            )
            return [
                ModelInfo(m.id, m.sha or "", _utc(m.last_modified or m.created_at), list(m.tags or [])) for m in models
            ]

    def files(self, repo_id: str, revision: str) -> dict[str, int | None]:
        """{path: size in bytes} of the revision's top-level files, from the tree listing (nothing downloaded)."""
        from huggingface_hub.hf_api import RepoFile

        validate_repo_id(repo_id)
        with _errors(repo_id, revision):
            tree = self.api.list_repo_tree(repo_id, revision=revision, recursive=False)
            return {e.path: e.size for e in tree if isinstance(e, RepoFile)}

    def download_files(self, repo_id: str, revision: str, names: list[str]) -> Path:
        """The revision's folder in the Hugging Face cache, holding (at least) `names`: top-level files of it, one
        or more."""
        from huggingface_hub import hf_hub_download

        validate_repo_id(repo_id)
        if not names:
            raise ValueError("download_files needs at least one file name")
        cache = os.environ.get("HF_HUB_CACHE") or None
        with _errors(repo_id, revision):
            paths = [
                Path(
                    str(
                        hf_hub_download(
                            repo_id, name, revision=revision, endpoint=self.endpoint, cache_dir=cache, repo_type="model"
                        )
                    )
                )
                for name in names
            ]
        return paths[0].parent

    def revisions(self, repo_id: str) -> list[tuple[str, datetime, str]]:
        validate_repo_id(repo_id)
        with _errors(repo_id):
            return [(c.commit_id, _utc(c.created_at), c.title) for c in self.api.list_repo_commits(repo_id)]

    def received(self, repo_id: str) -> dict[str, datetime]:
        """{}: this backend keeps no receipts, so the leaderboard takes the first index run that saw a revision as
        the time it arrived."""
        return {}
