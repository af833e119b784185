"""The leaderboard: an indexer that re-evaluates every pushed revision, and the ranking built on its figures.

The course's hosted leaderboard trusted the number on the model card, showed 100 models, refreshed once a day
and never noticed a re-push. Here every new revision of every repo is downloaded and evaluated again by the
course protocol (`deeprl evaluate --json`) in a child process with a time and memory limit, so a model that
hangs, eats memory or crashes costs one row with a reason, never the index. Both the card's claim and the
verified figures are stored per (repo, revision); the ranking uses only the verified ones.
"""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from deeprl import db
from deeprl.db import Evaluation, Repo
from deeprl.errors import UserError

DEFAULT_TIMEOUT_S = 600.0
DEFAULT_MEMORY_MB = 4096
DEFAULT_MAX_REVISIONS = 10  # per repo and run: a repo with a long history gets its newest revisions evaluated
SORT_KEYS = ("rank", "result", "mean_reward", "std_reward", "pushed_at", "repo_id", "user")
JSON_KEYS = ("rank", "repo_id", "user", "result", "mean_reward", "std_reward", "claimed_result", "flagged",
             "pushed_at")


# ---------------------------------------------------------------------------------------------------------
# Claims


def claim_is_flagged(claimed_mean: float | None, claimed_std: float | None, mean: float, std: float
                     ) -> str | None:
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
        return (f"card claims result {claimed_mean - claimed_std:.2f}, verified {mean - std:.2f} "
                f"(tolerance {tol:.2f})")
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
# Evaluation in a child process

MAX_FILES = 500  # listed per revision (the page shows them); a repo with more is listed up to this many
MAX_DEPTH = 8
# what the verifier reads, with the most it may copy of each (a bigger weights file is refused by modelio anyway)
COPIED = {"config.json": 1 << 20, "model.safetensors": 512 << 20, "README.md": 256 << 10}
# the only variables the child sees: nothing of the server's (tokens, database URL, DEEPRL_HOME) reaches a model
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV")


def _limits(memory_mb: int, timeout_s: float):
    def apply():
        # the child may allocate at most memory_mb of address space and burn at most ~timeout of CPU; the parent
        # also kills it at the wall-clock timeout (a sleeping or blocked model uses no CPU)
        limit = int(memory_mb) << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        cpu = int(timeout_s) + 5
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))  # it may write, but not fill the disk
        os.setsid()

    return apply


def _plain_file(path: Path, link_root: Path | None) -> os.stat_result | None:
    """The stat of a plain file, or None. A link counts only when it stays inside `link_root`: the Hugging Face
    cache links a snapshot's files to its blobs, while a link committed to a local hub repo is the pusher's."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) and link_root is not None:
            target = path.resolve(strict=True)
            if target.is_relative_to(link_root.resolve()):
                st = os.stat(target)
    except (OSError, RuntimeError):
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def list_files(root: Path, link_root: Path | None = None) -> list[list]:
    """[[path, size], ...] of a revision's plain files, bounded in count and depth; foreign links and dot-files
    skipped."""
    out: list[list] = []
    stack = [(Path(root), "", 0)]
    while stack and len(out) < MAX_FILES:
        folder, prefix, depth = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted((e for _, e in zip(range(MAX_FILES), it)), key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                continue
            rel = prefix + e.name
            st = _plain_file(Path(e.path), link_root) if not e.is_dir(follow_symlinks=False) else None
            if st is not None:
                out.append([rel, st.st_size])
                if len(out) >= MAX_FILES:
                    break
            elif e.is_dir(follow_symlinks=False) and depth < MAX_DEPTH:
                subdirs.append((Path(e.path), rel + "/", depth + 1))
        stack.extend(reversed(subdirs))
    return sorted(out)


def stage_copy(folder: Path, dest: Path, link_root: Path | None = None) -> None:
    """A read-only copy of the files the verifier reads: plain files only (a link to /etc/passwd named README.md
    stays behind), each at most its size budget (a bigger one is copied truncated and so fails to load)."""
    dest.mkdir()
    for name, budget in COPIED.items():
        src = folder / name
        if _plain_file(src, link_root) is None:
            continue
        with open(src, "rb") as fin, open(dest / name, "wb") as fout:
            left = budget + 1
            while left > 0:
                chunk = fin.read(min(left, 1 << 20))
                if not chunk:
                    break
                fout.write(chunk)
                left -= len(chunk)
        os.chmod(dest / name, 0o444)
    os.chmod(dest, 0o555)


def evaluate_folder(folder: Path, *, timeout_s: float = DEFAULT_TIMEOUT_S, memory_mb: int = DEFAULT_MEMORY_MB,
                    link_root: Path | None = None) -> dict:
    """Verify a model folder in a limited child (deeprl.verify): {'card': {...} or None, 'verdict': {...}}.

    The child gets a scrubbed environment, a temporary folder of its own as HOME, DEEPRL_HOME and working folder,
    and a read-only copy of the files it needs, under CPU, memory, file-size and wall-clock limits. A child that
    dies keeps the card it printed first; the verdict then says why it died.
    """
    with tempfile.TemporaryDirectory(prefix="deeprl-verify-") as tmp:
        model = Path(tmp) / "model"
        try:
            stage_copy(Path(folder), model, link_root)
        except OSError as exc:
            return {"card": None, "verdict": {"status": "error",
                                              "error": f"could not copy the model for verification ({exc.strerror})"}}
        work = Path(tmp) / "work"
        work.mkdir()
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        # one thread per child: the index runs beside a web server on a small machine
        env.update(HOME=str(work), TMPDIR=str(work), DEEPRL_HOME=str(work / "home"), OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1",
                   SDL_VIDEODRIVER="dummy", MPLBACKEND="Agg", HF_HUB_OFFLINE="1")
        cmd = [sys.executable, "-m", "deeprl.verify", str(model)]
        try:
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, preexec_fn=_limits(memory_mb, timeout_s))
        except OSError as exc:
            return {"card": None, "verdict": {"status": "error", "error": f"could not start the evaluation: {exc}"}}
        try:
            out, err = proc.communicate(timeout=timeout_s)
            died = None
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                proc.kill()
            out, err = proc.communicate()
            died = f"the evaluation took longer than {timeout_s:g} s and was stopped"
        for p in (model, *model.iterdir()):  # read-only copies: make them removable again
            os.chmod(p, 0o700)
    found: dict = {"card": None, "verdict": None}
    for line in out.decode(errors="replace").splitlines()[-10:]:
        if line.startswith("{") and len(line) < (4 << 20):
            try:
                item = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(item, dict):
                for key in ("card", "verdict"):
                    if isinstance(item.get(key), dict):
                        found[key] = item[key]
    if died or found["verdict"] is None or proc.returncode != 0:
        found["verdict"] = {"status": "error", "error": died or _death(proc.returncode, err, memory_mb)}
    return found


def _death(returncode: int, err: bytes, memory_mb: int) -> str:
    """One sentence for a child that printed no verdict."""
    text = err.decode(errors="replace")[-4000:]
    if returncode < 0:
        sig = -returncode
        why = {9: "killed", 24: "over its CPU time limit", 11: "crashed (segmentation fault)"}.get(sig, "killed")
        return f"the evaluation was {why} (signal {sig}); memory limit {memory_mb} MiB"
    if any(s in text for s in ("MemoryError", "Cannot allocate memory", "failed to map segment", "bad_alloc",
                               "out of memory")):
        return f"the evaluation ran out of memory (limit {memory_mb} MiB)"
    last = [ln.strip() for ln in text.splitlines() if ln.strip()][-1:] or [f"exit status {returncode}"]
    return f"the evaluation failed ({last[0][:200]})"


# ---------------------------------------------------------------------------------------------------------
# Indexer


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
        parts = [f"{self.listed} repos in the {self.hub} hub", f"{self.evaluated} revisions evaluated",
                 f"{self.skipped} unchanged"]
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
        return {"hub": self.hub, "listed": self.listed, "evaluated": self.evaluated, "skipped": self.skipped,
                "errors": self.errors, "custom": self.custom, "flagged": self.flagged, "removed": self.removed,
                "seconds": self.seconds}


def _utc(dt) -> datetime | None:
    if dt is None:
        return None
    if isinstance(dt, str):
        dt = datetime.fromisoformat(dt.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


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


def _evaluate_revision(hub_obj, hub: str, repo_id: str, sha: str, *, timeout_s: float, memory_mb: int) -> dict:
    """Fields of an Evaluation row for one revision (never raises for a bad model)."""
    fields: dict = {"status": "error"}
    started = time.perf_counter()
    try:
        folder = Path(hub_obj.download(repo_id, revision=sha))
    except Exception as exc:  # a repo we cannot fetch is listed with the reason
        fields["error"] = _scrub(f"could not fetch the revision: {exc}")
        return fields
    link_root = folder.parent.parent if hub == "hf" else None  # the repo's folder in the Hugging Face cache
    fields["files"] = json.dumps(list_files(folder, link_root))
    found = evaluate_folder(folder, timeout_s=timeout_s, memory_mb=memory_mb, link_root=link_root)
    fields["seconds"] = round(time.perf_counter() - started, 3)
    card, verdict = found["card"] or {}, found["verdict"]
    claim = _claim_fields(card.get("claim"))
    html = card.get("card_html")
    fields.update(claimed_env=claim["env"], claimed_mean=claim["mean"], claimed_std=claim["std"],
                  card_html=html if isinstance(html, str) else None,
                  card_meta=json.dumps(card.get("card_meta") if isinstance(card.get("card_meta"), dict) else {}),
                  algo=verdict.get("algo") if isinstance(verdict.get("algo"), str) else None)
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
    fields.update(status="ok", env=env, mean_reward=mean, std_reward=std, result=mean - std, n_eval_episodes=n,
                  error=None)
    reasons = []
    if claim["env"] and claim["env"] != env:
        reasons.append(f"card claims env {claim['env']}, the model is for {env}")
    why = claim_is_flagged(claim["mean"], claim["std"], mean, std)
    if why:
        reasons.append(why)
    fields["flagged"] = bool(reasons)
    fields["flag_reason"] = "; ".join(reasons) or None
    return fields


def index(hub: str = "local", *, url: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
          memory_mb: int = DEFAULT_MEMORY_MB, max_revisions: int = DEFAULT_MAX_REVISIONS, force: bool = False,
          log: Callable[[str], None] | None = None) -> IndexReport:
    """Evaluate every revision of every repo in `hub` that the database has not seen; update the latest ones.

    Index runs on one machine take turns (a file lock under DEEPRL_HOME): a `deeprl leaderboard` typed while the
    web server refreshes waits for it and then finds the revisions already evaluated.
    """
    from filelock import FileLock

    from deeprl.paths import home

    with FileLock(str(home() / "index.lock")):
        return _index(hub, url=url, timeout_s=timeout_s, memory_mb=memory_mb, max_revisions=max_revisions,
                      force=force, log=log)


def _index(hub: str, *, url, timeout_s, memory_mb, max_revisions, force, log) -> IndexReport:
    from deeprl.hub import get_hub

    started = time.perf_counter()
    report = IndexReport(hub=hub)
    hub_obj = get_hub(hub)
    # the real Hub holds every kind of model: take those tagged as RL agents; every repo in the local hub is one
    models = hub_obj.list_models(tag="reinforcement-learning" if hub == "hf" else None)
    report.listed = len(models)
    seen: set[str] = set()
    for info in models:
        repo_id = info.repo_id
        seen.add(repo_id)
        try:
            revisions = [(sha, _utc(when), msg) for sha, when, msg in hub_obj.revisions(repo_id)]
        except Exception as exc:
            revisions = []
            report.errors.append(f"{repo_id}: could not list revisions: {exc}")
        if not revisions and info.revision:
            revisions = [(info.revision, _utc(info.pushed_at), None)]
        latest_sha = info.revision or (revisions[0][0] if revisions else None)
        with db.session(url) as s:
            repo = db.get_repo(s, repo_id, hub)
            if repo is None:
                repo = Repo(hub=hub, repo_id=repo_id, user=repo_id.split("/", 1)[0])
                s.add(repo)
                s.flush()
            known = {e.revision: e for e in repo.evaluations}
            repo_pk = repo.id
        todo = [r for r in revisions[:max_revisions] if force or r[0] not in known]
        if latest_sha and all(r[0] != latest_sha for r in revisions[:max_revisions]) and latest_sha not in known:
            todo.insert(0, (latest_sha, _utc(info.pushed_at), None))
        report.skipped += len(revisions[:max_revisions]) - len(todo)
        # when the hub received it: the local hub's own record of the push, else the first index run that saw it
        # (a pusher sets the commit time, so it never decides a tie)
        now = db.utcnow()
        try:
            receipts = hub_obj.received(repo_id) if hasattr(hub_obj, "received") else {}
        except Exception:
            receipts = {}
        for sha, when, msg in todo:
            received = min(receipts.get(sha, now), now)
            if log:
                log(f"evaluating {repo_id}@{sha[:8]}")
            fields = _evaluate_revision(hub_obj, hub, repo_id, sha, timeout_s=timeout_s, memory_mb=memory_mb)
            with db.session(url) as s:
                row = s.scalar(select(Evaluation).where(Evaluation.repo_pk == repo_pk, Evaluation.revision == sha))
                if row is None:
                    row = Evaluation(repo_pk=repo_pk, revision=sha)
                    s.add(row)
                row.pushed_at, row.message, row.evaluated_at = when, msg, db.utcnow()
                row.received_at = row.received_at or received
                for key in ("env", "algo", "claimed_env", "claimed_mean", "claimed_std", "mean_reward",
                            "std_reward", "result", "n_eval_episodes", "error", "flag_reason", "seconds",
                            "card_html", "card_meta", "files"):
                    setattr(row, key, fields.get(key))
                row.status = fields["status"]
                row.flagged = bool(fields.get("flagged"))
            report.evaluated += 1
            if fields["status"] == "custom":
                report.custom.append(f"{repo_id}@{sha[:8]}: {fields.get('error')}")
            elif fields["status"] != "ok":
                report.errors.append(f"{repo_id}@{sha[:8]}: {fields.get('error')}")
                if log:
                    log(f"  not evaluated: {fields.get('error')}")
            elif fields.get("flagged"):
                report.flagged.append(f"{repo_id}@{sha[:8]}: {fields.get('flag_reason')}")
        with db.session(url) as s:
            repo = s.get(Repo, repo_pk)
            when = _utc(info.pushed_at) or next((r[1] for r in revisions if r[0] == latest_sha), None)
            repo.latest_revision, repo.pushed_at, repo.active = latest_sha, when, True
            repo.indexed_at = db.utcnow()
    with db.session(url) as s:
        for repo in s.scalars(select(Repo).where(Repo.hub == hub, Repo.active.is_(True))):
            if repo.repo_id not in seen:
                repo.active = False
                report.removed += 1
    report.seconds = round(time.perf_counter() - started, 2)
    return report


# ---------------------------------------------------------------------------------------------------------
# Ranking


def _latest_join():
    return and_(Evaluation.repo_pk == Repo.id, Evaluation.revision == Repo.latest_revision)


def _ranked_subquery(hub: str):
    """Latest revision of every active repo that evaluated fine, ranked within its env.

    Order: verified result, higher first; on a tie the revision this hub received first wins (it got there first;
    the commit time would be the pusher's word), then the repo id so that the order is total and the same on
    every run.
    """
    received = func.coalesce(Evaluation.received_at, Evaluation.evaluated_at)
    rank = func.row_number().over(partition_by=Evaluation.env,
                                  order_by=(Evaluation.result.desc(), received.asc(),
                                            Repo.repo_id.asc())).label("rank")
    return (select(rank, Repo.repo_id, Repo.user, Evaluation.env, Evaluation.revision, Evaluation.result,
                   Evaluation.mean_reward, Evaluation.std_reward, Evaluation.claimed_mean, Evaluation.claimed_std,
                   Evaluation.flagged, Evaluation.flag_reason, Evaluation.pushed_at, Evaluation.algo,
                   Evaluation.n_eval_episodes, received.label("received_at"))
            .join(Evaluation, _latest_join())
            .where(Repo.hub == hub, Repo.active.is_(True), Evaluation.status == "ok", Evaluation.env.is_not(None))
            .subquery())


def _json_or(text: str | None, default):
    """A JSON column written by the indexer (bounded there); the default when empty or unreadable."""
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else _utc(dt).isoformat(timespec="seconds")


def _row(r) -> dict:
    claimed = None if r.claimed_mean is None or r.claimed_std is None else r.claimed_mean - r.claimed_std
    return {"rank": r.rank, "repo_id": r.repo_id, "user": r.user, "result": r.result, "mean_reward": r.mean_reward,
            "std_reward": r.std_reward, "claimed_result": claimed, "flagged": bool(r.flagged),
            "pushed_at": _iso(r.pushed_at), "env": r.env, "revision": r.revision, "flag_reason": r.flag_reason,
            "algo": r.algo, "n_eval_episodes": r.n_eval_episodes, "received_at": _iso(r.received_at)}


def ranking(s: Session, env: str, *, hub: str = "local", user: str | None = None, sort: str = "rank",
            order: str | None = None, offset: int = 0, limit: int | None = None) -> tuple[list[dict], int]:
    """(rows, total matching) of env's leaderboard. Ranks are global to the env: a user search keeps them."""
    if sort not in SORT_KEYS:
        raise UserError(f"Cannot sort by '{sort}'; use one of {', '.join(SORT_KEYS)}.")
    if order not in (None, "asc", "desc"):
        raise UserError(f"Order must be asc or desc, not '{order}'.")
    sub = _ranked_subquery(hub)
    where = [sub.c.env == env]
    if user:
        pattern = "%" + user.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(func.lower(sub.c.user).like(pattern, escape="\\"))
    # the total rides along as a window over the filtered rows: one pass instead of a second COUNT query
    q = select(sub, func.count().over().label("total")).where(*where)
    default_desc = sort in ("result", "mean_reward", "std_reward", "pushed_at")
    desc = (order == "desc") if order else default_desc
    col = sub.c[sort]
    q = q.order_by(col.desc() if desc else col.asc(), sub.c.rank.asc())
    if offset:
        q = q.offset(offset)
    if limit is not None:
        q = q.limit(limit)
    found = list(s.execute(q))
    if found:
        total = found[0].total
    else:  # a page past the end says nothing about the total
        total = s.scalar(select(func.count()).select_from(select(sub.c.rank).where(*where).subquery()))
    return [_row(r) for r in found], int(total or 0)


def json_row(row: dict, with_env: bool = False) -> dict:
    out = {k: row[k] for k in JSON_KEYS}
    if with_env:
        out["env"] = row["env"]
    return out


def unranked(s: Session, env: str | None = None, *, hub: str = "local", any_env: bool = False) -> list[dict]:
    """Latest revisions that could not be evaluated, with the reason (env None: those with no known env)."""
    q = (select(Repo.repo_id, Repo.user, Evaluation.env, Evaluation.revision, Evaluation.error,
                Evaluation.pushed_at)
         .join(Evaluation, _latest_join())
         .where(Repo.hub == hub, Repo.active.is_(True), Evaluation.status != "ok"))
    if not any_env:
        q = q.where(Evaluation.env.is_(None) if env is None else Evaluation.env == env)
    q = q.order_by(Evaluation.pushed_at.asc(), Repo.repo_id.asc())
    return [{"repo_id": r.repo_id, "user": r.user, "env": r.env, "revision": r.revision, "error": r.error,
             "pushed_at": _iso(r.pushed_at)} for r in s.execute(q)]


def env_summaries(s: Session, *, hub: str = "local") -> list[dict]:
    """Every env with ranked models: counts, users and the best verified result; most models first."""
    q = (select(Evaluation.env, func.count().label("models"), func.count(func.distinct(Repo.user)).label("users"),
                func.max(Evaluation.result).label("best"), func.max(Evaluation.pushed_at).label("last_push"))
         .join(Evaluation, _latest_join())
         .where(Repo.hub == hub, Repo.active.is_(True), Evaluation.status == "ok", Evaluation.env.is_not(None))
         .group_by(Evaluation.env).order_by(func.count().desc(), Evaluation.env))
    out = [{"env": r.env, "models": r.models, "users": r.users, "best_result": r.best,
            "last_push": _iso(r.last_push)} for r in s.execute(q)]
    errors = dict(s.execute(select(Evaluation.env, func.count()).join(Repo, _latest_join())
                            .where(Repo.hub == hub, Repo.active.is_(True), Evaluation.status != "ok")
                            .group_by(Evaluation.env)).all())
    for item in out:
        item["unranked"] = errors.pop(item["env"], 0)
    for env, n in sorted(errors.items(), key=lambda kv: str(kv[0])):
        if env is not None:
            out.append({"env": env, "models": 0, "users": 0, "best_result": None, "last_push": None, "unranked": n})
    return out


def leaderboard(env: str | None = None, *, hub: str = "local", url: str | None = None) -> dict:
    """What `deeprl leaderboard --json` prints: {"env", "rows"}; env None gives every env, each row with its env."""
    with db.session(url) as s:
        if env is not None:
            rows, _ = ranking(s, env, hub=hub)
            return {"env": env, "rows": [json_row(r) for r in rows]}
        rows = []
        for item in env_summaries(s, hub=hub):
            rows += [json_row(r, with_env=True) for r in ranking(s, item["env"], hub=hub)[0]]
        return {"env": None, "rows": rows}


def model_detail(s: Session, repo_id: str, *, hub: str = "local") -> dict | None:
    """A repo with every evaluated revision (newest first) and the rank of its latest one."""
    repo = db.get_repo(s, repo_id, hub)
    if repo is None:
        return None
    revisions = []
    # newest first; git times have one-second resolution, so the hub's latest revision leads whatever its time says
    for e in sorted(repo.evaluations, key=lambda e: (e.revision == repo.latest_revision,
                                                     e.pushed_at or datetime.min.replace(tzinfo=timezone.utc),
                                                     e.id), reverse=True):
        revisions.append({"revision": e.revision, "message": e.message, "pushed_at": _iso(e.pushed_at),
                          "env": e.env, "algo": e.algo, "status": e.status, "error": e.error,
                          "mean_reward": e.mean_reward, "std_reward": e.std_reward, "result": e.result,
                          "n_eval_episodes": e.n_eval_episodes, "claimed_env": e.claimed_env,
                          "claimed_mean": e.claimed_mean, "claimed_std": e.claimed_std,
                          "claimed_result": e.claimed_result, "flagged": e.flagged, "flag_reason": e.flag_reason,
                          "evaluated_at": _iso(e.evaluated_at), "latest": e.revision == repo.latest_revision,
                          "received_at": _iso(e.received_at), "card_html": e.card_html,
                          "card_meta": _json_or(e.card_meta, {}), "files": _json_or(e.files, [])})
    latest = next((r for r in revisions if r["latest"]), None)
    rank = None
    if latest and latest["status"] == "ok" and latest["env"]:
        sub = _ranked_subquery(hub)
        rank = s.scalar(select(sub.c.rank).where(sub.c.repo_id == repo_id))
    return {"repo_id": repo.repo_id, "user": repo.user, "hub": repo.hub, "active": repo.active,
            "latest_revision": repo.latest_revision, "pushed_at": _iso(repo.pushed_at),
            "env": latest["env"] if latest else None, "rank": rank, "latest": latest, "revisions": revisions}


def format_table(env: str, rows: list[dict], errors: list[dict] | None = None) -> str:
    lines = [f"{env}  ({len(rows)} ranked)"]
    if rows:
        w_model = max(5, *(len(r["repo_id"]) for r in rows))
        w_user = max(4, *(len(r["user"]) for r in rows))
        lines.append(f"{'rank':>4}  {'model':<{w_model}}  {'user':<{w_user}}  {'result':>10}  "
                     f"{'mean +/- std':>21}  pushed at")
        for r in rows:
            flag = "  ! claim " + (f"{r['claimed_result']:.2f}" if r["claimed_result"] is not None else "?") \
                if r["flagged"] else ""
            ms = f"{r['mean_reward']:.2f} +/- {r['std_reward']:.2f}"
            pushed = (r["pushed_at"] or "-").replace("T", " ").replace("+00:00", "Z")
            lines.append(f"{r['rank']:>4}  {r['repo_id']:<{w_model}}  {r['user']:<{w_user}}  {r['result']:>10.2f}  "
                         f"{ms:>21}  {pushed}{flag}")
    for e in errors or []:
        lines.append(f"   -  {e['repo_id']}  not ranked: {e['error']}")
    return "\n".join(lines)
