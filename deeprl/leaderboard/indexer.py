"""The index run: every new revision of every repo in a hub, re-evaluated and stored with its card's claim.

The course's hosted leaderboard trusted the number on the model card, showed 100 models, refreshed once a day
and never noticed a re-push. Here every new revision is downloaded and evaluated again by the course protocol in
a limited child process (sandbox.py); both the card's claim and the verified figures are stored per (repo,
revision), and a claim far from the verified figures is flagged (`claim_is_flagged`). Ranking reads these rows
(ranking.py).

A run may take part of a hub (`Listing`: tags, an author, a search, as the Hub's model search takes them), which
is how the real Hub's course models are indexed: `deeprl index --hub hf --filter deep-rl-course`. Those are
mostly Stable-Baselines3 repos; from the Hub only the files the verifier reads are fetched, after their sizes in
the tree listing are checked (sandbox.model_files).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

from sqlalchemy import select

from deeprl import db
from deeprl.db import Evaluation, Repo, as_utc
from deeprl.dispatch import DispatchOptions, dispatching
from deeprl.leaderboard.sandbox import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_S,
    MAX_FILES,
    EvalJob,
    evaluate_job,
    evaluation_failed,
    list_files,
    model_files,
    pack,
)

if TYPE_CHECKING:
    from deeprl.hub import Hub, ModelInfo

DEFAULT_MAX_REVISIONS = 10  # per repo and run: a repo with a long history gets its newest revisions evaluated


# ---------------------------------------------------------------------------------------------------------
# Claims


def claim_is_flagged(claimed_mean: float | None, claimed_std: float | None, mean: float, std: float) -> str | None:
    """Why a card's claim is far from what we measured, or None when it is plausible.

    Tolerance = max(claimed_std + verified_std, 5 % of |verified_mean|, 0.01):
    - an honest claim measured with other seeds (or another library's evaluation) differs from ours by about
      sqrt(2) * std / sqrt(n_episodes), well under one std for the course's 10 or 100 episodes, so the sum of
      both stds is a wide band that only a wrong claim leaves;
    - 5 % of the mean covers envs whose returns are almost constant (std near 0) but whose dynamics moved a
      little between library versions (LunarLander-v2 -> v3);
    - 0.01 covers the two decimals the card's "mean +/- std" string is rounded to.
    The claimed result (mean - std) is held to the same band, so understating the std to lift the result counts
    too. Claims below our figures are flagged as well: a wrong number is wrong in either direction.
    """
    if claimed_mean is None:
        return None
    tol = max((claimed_std or 0.0) + std, 0.05 * abs(mean), 0.01)
    if abs(claimed_mean - mean) > tol:
        return f"card claims mean {claimed_mean:.2f}, verified {mean:.2f} (tolerance {tol:.2f})"
    if claimed_std is not None and (claimed_mean - claimed_std) - (mean - std) > tol:
        return f"card claims result {claimed_mean - claimed_std:.2f}, verified {mean - std:.2f} (tolerance {tol:.2f})"
    return None


def _claim_fields(claim: dict | None) -> dict:
    """{'env', 'mean', 'std'} of a card's claim (from the verifier), each None when the card does not say."""
    claim = claim if isinstance(claim, dict) else {}
    out = {"env": claim.get("env_tag") if isinstance(claim.get("env_tag"), str) else None, "mean": None, "std": None}
    for key in ("mean", "std"):
        try:
            out[key] = None if claim.get(key) is None else float(claim[key])
        except (TypeError, ValueError):
            out[key] = None
    return out


# ---------------------------------------------------------------------------------------------------------
# The index run


@dataclass(frozen=True)
class Listing:
    """Which of a hub's repos a run takes: those with every tag in `filters`, by `author` (the namespace), whose id
    contains `search` (case-insensitive), at most `limit` (the Hub's model search; the local hub filters alike)."""

    filters: tuple[str, ...] = ()
    author: str | None = None
    search: str | None = None
    limit: int | None = None

    def covers(self, repo_id: str) -> bool:
        """Whether this listing would have listed `repo_id` had it still been there (so a repo it did not list is
        gone from the hub). A listing by tags or cut at a limit cannot say: a repo outside it is left as it is."""
        if self.filters or self.limit is not None:
            return False
        return (self.author is None or repo_id.split("/", 1)[0] == self.author) and (
            self.search is None or self.search.lower() in repo_id.lower()
        )

    def keeps(self, info: ModelInfo) -> bool:
        return (
            all(t in info.tags for t in self.filters)
            and (self.author is None or info.repo_id.split("/", 1)[0] == self.author)
            and (self.search is None or self.search.lower() in info.repo_id.lower())
        )


def list_hub(hub_obj: Hub, hub: str, listing: Listing) -> list[ModelInfo]:
    """The repos a run takes. The real Hub holds every kind of model: of it, those tagged as RL agents, found by
    the Hub's own search; every repo in the local hub is one."""
    from deeprl.hub.hf import HFHub

    if isinstance(hub_obj, HFHub):
        return hub_obj.search_models(
            "reinforcement-learning",
            filters=listing.filters,
            author=listing.author,
            search=listing.search,
            limit=listing.limit,
        )
    models = [m for m in hub_obj.list_models() if listing.keeps(m)]
    return models[: listing.limit] if listing.limit is not None else models


@dataclass
class IndexReport:
    hub: str
    listed: int = 0
    evaluated: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    custom: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    removed: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        parts = [
            f"{self.listed} repos in the {self.hub} hub",
            f"{self.evaluated} revisions evaluated",
            f"{self.skipped} unchanged",
        ]
        if self.errors:
            parts.append(f"{len(self.errors)} could not be evaluated")
        if self.custom:
            parts.append(f"{len(self.custom)} custom tasks (not ranked)")
        if self.flagged:
            parts.append(f"{len(self.flagged)} claims flagged")
        if self.removed:
            parts.append(f"{self.removed} gone from the hub")
        return "Indexed: " + ", ".join(parts) + f" ({self.seconds:.1f} s)."

    def to_dict(self) -> dict:
        return {
            "hub": self.hub,
            "listed": self.listed,
            "evaluated": self.evaluated,
            "skipped": self.skipped,
            "errors": self.errors,
            "custom": self.custom,
            "flagged": self.flagged,
            "removed": self.removed,
            "seconds": self.seconds,
        }


def _scrub(text: str, *folders: Path) -> str:
    """An error for a row anyone can read: the server's own paths replaced by what they are."""
    from deeprl.paths import home

    for folder, name in ((f, "the model folder") for f in folders):
        text = text.replace(str(folder), name)
    return text.replace(str(home()), "DEEPRL_HOME")[:1000]


def _filed_env(folder: Path) -> str | None:
    """The board a revision whose child died belongs on: its config's tag, read with the verifier's bounds."""
    from deeprl.envs import ranked_task
    from deeprl.verify import read_json_bounded

    try:
        config = read_json_bounded(folder / "config.json")
    except ValueError:
        return None
    tag, _ = ranked_task(config.get("env_id"), config.get("env_kwargs"))
    return tag or (config["env_tag"][:100] if isinstance(config.get("env_tag"), str) else None)


@dataclass
class _Todo:
    """One revision to evaluate, with what the driver learned fetching it (the job itself runs elsewhere)."""

    repo_pk: int
    repo_id: str
    sha: str
    pushed_at: datetime | None
    message: str | None
    received: datetime
    folder: Path | None = None
    files: str | None = None  # the JSON file list a model page shows
    fetch_error: str | None = None


def _fetch(hub_obj: Hub, todo: _Todo) -> tuple[Path, str | None]:
    """The revision's folder here, and the JSON file list its page shows. From the Hugging Face Hub only the files
    the verifier reads are downloaded, once the tree listing says they are within their budgets (ValueError with
    the reason otherwise); the page lists every file of the revision."""
    from deeprl.hub.hf import HFHub

    if not isinstance(hub_obj, HFHub):
        return Path(hub_obj.download(todo.repo_id, revision=todo.sha)), None
    sizes = hub_obj.files(todo.repo_id, todo.sha)
    wanted = model_files(sizes, todo.repo_id.split("/", 1)[1], sized=True)
    if not wanted:
        raise ValueError(
            "the repo holds no model: neither config.json and model.safetensors (deeprl) nor an SB3 .zip at its top"
        )
    folder = hub_obj.download_files(todo.repo_id, todo.sha, list(dict.fromkeys(wanted.values())))
    listed = sorted([path, size or 0] for path, size in sizes.items())[:MAX_FILES]
    return folder, json.dumps(listed)


def _job(hub_obj: Hub, hub: str, todo: _Todo, *, timeout_s: float, memory_mb: int) -> EvalJob:
    """Fetch one revision here and pack the files its evaluation reads (never raises for a bad model)."""
    name = todo.repo_id.split("/", 1)[1]
    try:
        folder, listed = _fetch(hub_obj, todo)
    except Exception as exc:  # a repo we cannot fetch is listed with the reason
        todo.fetch_error = _scrub(f"could not fetch the revision: {exc}")
        return EvalJob(None, error=todo.fetch_error)
    todo.folder = folder
    link_root = folder.parent.parent if hub == "hf" else None  # the repo's folder in the Hugging Face cache
    todo.files = listed or json.dumps(list_files(folder, link_root))
    try:
        files = pack(folder, link_root, name)
    except OSError as exc:
        return EvalJob(None, error=f"could not copy the model for verification ({exc.strerror})")
    except ValueError as exc:
        return EvalJob(None, error=str(exc))
    return EvalJob(files, timeout_s=timeout_s, memory_mb=memory_mb, name=name)


def _fields(todo: _Todo, found: dict) -> dict:
    """Fields of an Evaluation row from one evaluation job's result."""
    fields: dict = {"status": "error"}
    if todo.fetch_error is not None or todo.folder is None:
        fields["error"] = todo.fetch_error
        return fields
    folder = todo.folder
    fields["files"] = todo.files
    fields["seconds"] = found.get("seconds")
    card, verdict = found.get("card") or {}, found.get("verdict") or {}
    claim = _claim_fields(card.get("claim"))
    html = card.get("card_html")
    fields.update(
        claimed_env=claim["env"],
        claimed_mean=claim["mean"],
        claimed_std=claim["std"],
        card_html=html if isinstance(html, str) else None,
        card_meta=json.dumps(card.get("card_meta") if isinstance(card.get("card_meta"), dict) else {}),
        algo=verdict.get("algo") if isinstance(verdict.get("algo"), str) else None,
    )
    env = verdict.get("env") if isinstance(verdict.get("env"), str) else None
    if verdict.get("status") != "ok":
        fields["status"] = "custom" if verdict.get("status") == "custom" else "error"
        fields["env"] = (env or _filed_env(folder) or claim["env"] or "")[:100] or None
        fields["error"] = _scrub(str(verdict.get("error") or "the evaluation failed"), folder)
        return fields
    try:
        mean, std = float(verdict["mean_reward"]), float(verdict["std_reward"])
        n = int(verdict.get("n_eval_episodes") or 0)
    except (KeyError, TypeError, ValueError):
        fields.update(env=env, error="the evaluation printed no usable figures")
        return fields
    fields.update(
        status="ok", env=env, mean_reward=mean, std_reward=std, result=mean - std, n_eval_episodes=n, error=None
    )
    reasons = []
    if claim["env"] and claim["env"] != env:
        reasons.append(f"card claims env {claim['env']}, the model is for {env}")
    why = claim_is_flagged(claim["mean"], claim["std"], mean, std)
    if why:
        reasons.append(why)
    fields["flagged"] = bool(reasons)
    fields["flag_reason"] = "; ".join(reasons) or None
    return fields


def index(
    hub: str = "local",
    *,
    url: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    max_revisions: int = DEFAULT_MAX_REVISIONS,
    force: bool = False,
    log: Callable[[str], None] | None = None,
    dispatch: DispatchOptions | None = None,
    listing: Listing | None = None,
) -> IndexReport:
    """Evaluate every revision of every repo in `hub` (of those `listing` takes) that the database has not seen;
    update the latest ones.

    The evaluations are independent jobs (deeprl.dispatch): a local pool sized to the cores by default, a Ray
    cluster with `dispatch=DispatchOptions(ray=ADDRESS)`. Each runs in the same limited child wherever it runs;
    the rows are stored in the order the revisions were listed.

    Index runs on one machine take turns (a file lock under DEEPRL_HOME): a `deeprl leaderboard` typed while the
    web server refreshes waits for it and then finds the revisions already evaluated.
    """
    from filelock import FileLock

    from deeprl.paths import home

    with FileLock(str(home() / "index.lock")):
        return _index(
            hub,
            url=url,
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            max_revisions=max_revisions,
            force=force,
            log=log,
            dispatch=dispatch,
            listing=listing,
        )


ROW_KEYS = (
    "env",
    "algo",
    "claimed_env",
    "claimed_mean",
    "claimed_std",
    "mean_reward",
    "std_reward",
    "result",
    "n_eval_episodes",
    "error",
    "flag_reason",
    "seconds",
    "card_html",
    "card_meta",
    "files",
)


def _index(
    hub: str,
    *,
    url: str | None,
    timeout_s: float,
    memory_mb: int,
    max_revisions: int,
    force: bool,
    log: Callable[[str], None] | None,
    dispatch: DispatchOptions | None = None,
    listing: Listing | None = None,
) -> IndexReport:
    from deeprl.hub import get_hub

    started = time.perf_counter()
    report = IndexReport(hub=hub)
    hub_obj = get_hub(hub)
    listing = listing or Listing()
    models = list_hub(hub_obj, hub, listing)
    report.listed = len(models)
    seen: set[str] = set()
    todos: list[_Todo] = []
    # a repo's latest revision is recorded once its own evaluations are stored: {repo_pk: (latest, pushed_at)}
    latest: dict[int, tuple[str | None, datetime | None]] = {}
    left: dict[int, int] = {}  # evaluations still to store, per repo
    for info in models:
        repo_id = info.repo_id
        seen.add(repo_id)
        revisions: list[tuple[str, datetime | None, str | None]]
        try:
            revisions = [(sha, as_utc(when), msg) for sha, when, msg in hub_obj.revisions(repo_id)]
        except Exception as exc:
            revisions = []
            report.errors.append(f"{repo_id}: could not list revisions: {exc}")
        if not revisions and info.revision:
            revisions = [(info.revision, as_utc(info.pushed_at), None)]
        latest_sha = info.revision or (revisions[0][0] if revisions else None)
        with db.session(url) as s:
            repo = db.get_repo(s, repo_id, hub)
            if repo is None:
                repo = Repo(hub=hub, repo_id=repo_id, user=repo_id.split("/", 1)[0])
                s.add(repo)
                s.flush()
            known = {e.revision: e for e in repo.evaluations}
            repo_pk = repo.id
        new = [r for r in revisions[:max_revisions] if force or r[0] not in known]
        if latest_sha and all(r[0] != latest_sha for r in revisions[:max_revisions]) and latest_sha not in known:
            new.insert(0, (latest_sha, as_utc(info.pushed_at), None))
        report.skipped += len(revisions[:max_revisions]) - len(new)
        # when the hub received it: the local hub's own record of the push, else the first index run that saw it
        # (a pusher sets the commit time, so it never decides a tie)
        now = db.utcnow()
        try:
            receipts = hub_obj.received(repo_id)
        except Exception:
            receipts = {}
        todos += [_Todo(repo_pk, repo_id, sha, when, msg, min(receipts.get(sha, now), now)) for sha, when, msg in new]
        latest[repo_pk] = (
            latest_sha,
            as_utc(info.pushed_at) or next((r[1] for r in revisions if r[0] == latest_sha), None),
        )
        left[repo_pk] = len(new)
        if not new:
            _mark_latest(url, repo_pk, *latest[repo_pk])

    def jobs() -> Iterator[EvalJob]:
        for todo in todos:
            if log:
                log(f"evaluating {todo.repo_id}@{todo.sha[:8]}")
            yield _job(hub_obj, hub, todo, timeout_s=timeout_s, memory_mb=memory_mb)

    with dispatching(dispatch if todos else DispatchOptions(workers=1)) as dispatcher:  # no cluster for nothing
        for todo, found in zip(todos, dispatcher.map(evaluate_job, jobs(), evaluation_failed)):
            fields = _fields(todo, found)
            with db.session(url) as s:
                row = s.scalar(
                    select(Evaluation).where(Evaluation.repo_pk == todo.repo_pk, Evaluation.revision == todo.sha)
                )
                if row is None:
                    row = Evaluation(repo_pk=todo.repo_pk, revision=todo.sha)
                    s.add(row)
                row.pushed_at, row.message, row.evaluated_at = todo.pushed_at, todo.message, db.utcnow()
                row.received_at = row.received_at or todo.received
                for key in ROW_KEYS:
                    setattr(row, key, fields.get(key))
                row.status = fields["status"]
                row.flagged = bool(fields.get("flagged"))
            report.evaluated += 1
            where = f"{todo.repo_id}@{todo.sha[:8]}"
            if fields["status"] == "custom":
                report.custom.append(f"{where}: {fields.get('error')}")
            elif fields["status"] != "ok":
                report.errors.append(f"{where}: {fields.get('error')}")
                if log:
                    log(f"  not evaluated: {where}: {fields.get('error')}")
            elif fields.get("flagged"):
                report.flagged.append(f"{where}: {fields.get('flag_reason')}")
            left[todo.repo_pk] -= 1
            if left[todo.repo_pk] == 0:
                _mark_latest(url, todo.repo_pk, *latest[todo.repo_pk])
    with db.session(url) as s:
        for repo in s.scalars(select(Repo).where(Repo.hub == hub, Repo.active.is_(True))):
            if repo.repo_id not in seen and listing.covers(repo.repo_id):
                repo.active = False
                report.removed += 1
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def _mark_latest(url: str | None, repo_pk: int, sha: str | None, pushed_at: datetime | None) -> None:
    """Record a repo's latest revision (after its new revisions' rows are stored: a page never shows a latest
    revision without its figures when they are on the way)."""
    with db.session(url) as s:
        repo = cast(Repo, s.get(Repo, repo_pk))  # the row this run read or added
        repo.latest_revision, repo.pushed_at, repo.active = sha, pushed_at, True
        repo.indexed_at = db.utcnow()
