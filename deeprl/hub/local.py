"""The local hub: DEEPRL_HOME/hub/NAMESPACE/NAME, each a git repository, one commit per push.

A push builds its commit with git's plumbing in a private index (the staged folder is the work tree), so nothing
in the repository changes until the branch ref moves with a compare-and-swap `update-ref`: a push that fails
halfway leaves the last good commit as it was (at worst some unreferenced objects). A file lock per repo
serializes the commit step, so concurrent pushers each get their own commit on top of the previous one.
The repository's own work tree mirrors the branch tip (synced after each push, and re-synced on read when a
push died between moving the ref and syncing); other revisions are materialized into DEEPRL_HOME/cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from deeprl.errors import UserError
from deeprl.hub.base import ModelInfo, validate_repo_id
from deeprl.paths import home

if TYPE_CHECKING:
    from filelock import FileLock

BRANCH = "refs/heads/main"
ZERO = "0" * 40
SYNCED = "deeprl-synced"  # in .git: the commit the work tree was last synced to
RECEIPTS = "deeprl-received"  # in .git: one line per push, "<commit> <unix time the hub took it>"
LOCK_TIMEOUT_S = 600


def _git_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    # A user's own git config (signing, hooks, filters, autocrlf) must not change what a push stores,
    # and a machine with no git identity must still be able to commit.
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": env.get("DEEPRL_GIT_NAME", "deeprl"),
            "GIT_AUTHOR_EMAIL": env.get("DEEPRL_GIT_EMAIL", "deeprl@localhost"),
            "GIT_COMMITTER_NAME": env.get("DEEPRL_GIT_NAME", "deeprl"),
            "GIT_COMMITTER_EMAIL": env.get("DEEPRL_GIT_EMAIL", "deeprl@localhost"),
            "LC_ALL": "C",
        }
    )
    for key in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"):
        env.pop(key, None)
    env.update(extra or {})
    return env


def git(
    repo: Path,
    *args: str,
    env: dict | None = None,
    input: bytes | None = None,
    check: bool = True,
    cwd: Path | None = None,
) -> str:
    if shutil.which("git") is None:
        raise UserError("The local hub needs the 'git' program; install git (for example: apt-get install git).")
    proc = subprocess.run(
        ["git", f"--git-dir={repo / '.git'}", *args],
        input=input,
        capture_output=True,
        env=_git_env(env),
        cwd=cwd or repo,
    )
    if check and proc.returncode != 0:
        git_failed(repo, args, proc.stderr)
    return proc.stdout.decode(errors="replace").strip()


# git's own words for what the user can fix (a full or read-only disk), and what we say instead
_GIT_USER_FAILURES = (
    ("No space left on device", "there is no space left on the device; free some space"),
    ("Disk quota exceeded", "the disk quota is used up; free some space"),
    ("Read-only file system", "it is on a read-only file system; set DEEPRL_HOME to a writable folder"),
    ("Permission denied", "permission was denied; set DEEPRL_HOME to a folder you can write to"),
)


def git_failed(repo: Path, args: Sequence[str], stderr: bytes) -> NoReturn:
    """Raise for a failed git command: a UserError naming the hub folder when the disk is full or read-only
    (a push then changed nothing: the branch moves last), else a RuntimeError with git's message."""
    text = stderr.decode(errors="replace").strip()
    for needle, sentence in _GIT_USER_FAILURES:
        if needle.lower() in text.lower():
            raise UserError(f"Cannot write the local hub repository {repo}: {sentence}, then push again.")
    raise RuntimeError(f"git {' '.join(args)} failed: {text}")


class LocalHub:
    name = "local"

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else home() / "hub"

    def repo_path(self, repo_id: str) -> Path:
        return self.root / validate_repo_id(repo_id)

    def location(self, repo_id: str) -> str:
        return str(self.repo_path(repo_id))

    def check_ready(self) -> None:
        """Nothing to check before a push: the folder and git are checked when the push writes."""

    def _lock(self, repo_id: str) -> FileLock:
        from filelock import FileLock

        ns, name = repo_id.split("/")
        (self.root / ns).mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / ns / f".{name}.lock"), timeout=LOCK_TIMEOUT_S)

    def _exists(self, repo_id: str) -> bool:
        return (self.repo_path(repo_id) / ".git" / "HEAD").is_file()

    def _require(self, repo_id: str) -> Path:
        if not self._exists(repo_id):
            raise UserError(
                f"No repo '{repo_id}' in the local hub ({self.root}); push one with "
                f"'deeprl push RUN_DIR --repo-id {repo_id}'."
            )
        return self.repo_path(repo_id)

    def _head(self, repo: Path) -> str | None:
        return git(repo, "rev-parse", "-q", "--verify", BRANCH + "^{commit}", check=False) or None

    # -- writing ----------------------------------------------------------------------------------------------

    def _init(self, repo: Path) -> None:
        """Create the repository in a temporary folder and rename it in, so it appears whole or not at all."""
        tmp = Path(tempfile.mkdtemp(prefix=f".{repo.name}.init.", dir=repo.parent))
        try:
            proc = subprocess.run(["git", "init", "-q", "-b", "main", str(tmp)], capture_output=True, env=_git_env())
            if proc.returncode != 0:
                git_failed(repo, ["init"], proc.stderr)
            git(tmp, "config", "gc.auto", "0")  # no surprise repacks while another process waits on the lock
            os.rename(tmp, repo)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def push(self, folder: Path, repo_id: str, commit_message: str) -> str:
        folder = Path(folder)
        repo = self.repo_path(repo_id)
        if not folder.is_dir():
            raise UserError(f"{folder} is not a folder to push.")
        with self._lock(repo_id):
            if not self._exists(repo_id):
                if repo.exists():
                    raise UserError(f"{repo} exists but is not a hub repository; move it away and push again.")
                self._init(repo)
            fd, index = tempfile.mkstemp(prefix="index.", dir=repo / ".git")
            os.close(fd)
            os.unlink(index)  # git wants to create the index itself
            try:
                env = {"GIT_INDEX_FILE": index, "GIT_WORK_TREE": str(folder)}
                git(repo, "add", "-A", env=env, cwd=folder)
                tree = git(repo, "write-tree", env=env)
                parent = self._head(repo)
                args = ["commit-tree", tree, "-F", "-"] + (["-p", parent] if parent else [])
                commit = git(repo, *args, input=(commit_message.strip() or "Push").encode() + b"\n")
                # compare-and-swap: the ref moves only from the parent we built on
                git(repo, "update-ref", "-m", "push", BRANCH, commit, parent or ZERO)
                self._record_receipt(repo, commit)
            finally:
                try:
                    os.unlink(index)
                except OSError:
                    pass
            self._sync(repo, commit)
        return commit

    def _record_receipt(self, repo: Path, commit: str) -> None:
        """When the hub took the commit, by this machine's clock: a commit's own date is whatever the pusher set
        (GIT_COMMITTER_DATE), and the leaderboard breaks ties on who got there first."""
        with open(repo / ".git" / RECEIPTS, "a", encoding="ascii") as fh:
            fh.write(f"{commit} {time.time():.6f}\n")

    def received(self, repo_id: str) -> dict[str, datetime]:
        """{commit: when this hub received it} for the pushes it recorded (older hubs recorded none)."""
        path = self.repo_path(repo_id) / ".git" / RECEIPTS
        out: dict[str, datetime] = {}
        try:
            with open(path, encoding="ascii", errors="replace") as fh:
                lines = fh.read(4 << 20).splitlines()
        except OSError:
            return out
        for line in lines:
            sha, _, ts = line.partition(" ")
            try:
                out.setdefault(sha, datetime.fromtimestamp(float(ts), tz=UTC))
            except (ValueError, OverflowError, OSError):
                continue
        return out

    def _sync(self, repo: Path, commit: str) -> None:
        """Make the repository's work tree show `commit` (called with the lock held)."""
        git(repo, f"--work-tree={repo}", "reset", "-q", "--hard", commit)
        (repo / ".git" / SYNCED).write_text(commit + "\n")

    # -- reading ----------------------------------------------------------------------------------------------

    def _verify(self, repo: Path, repo_id: str, revision: str) -> str:
        sha = git(repo, "rev-parse", "-q", "--verify", f"{revision}^{{commit}}", check=False)
        if not sha:
            recent = ", ".join(s[:12] for s, _, _ in self.revisions(repo_id)[:3])
            raise UserError(
                f"Repo '{repo_id}' has no revision '{revision}' (latest: {recent or 'none'}); "
                f"'deeprl load {repo_id}' takes --revision with a commit, branch or tag."
            )
        return sha

    def resolve(self, repo_id: str, revision: str | None = None) -> Path:
        repo = self._require(repo_id)
        head = self._head(repo)
        if head is None:
            raise UserError(f"Repo '{repo_id}' in the local hub has no commit yet; push to it first.")
        sha = head if revision is None else self._verify(repo, repo_id, revision)
        if sha == head:
            synced = repo / ".git" / SYNCED
            if not synced.is_file() or synced.read_text().strip() != head:
                with self._lock(repo_id):  # a push died after moving the ref: finish its sync
                    head = self._head(repo)
                    assert head is not None  # a ref once written is only ever moved, never removed
                    self._sync(repo, head)
                if sha != head:  # someone pushed meanwhile; the asked-for commit is now an old one
                    return self._materialize(repo, repo_id, sha)
            return repo
        return self._materialize(repo, repo_id, sha)

    def _materialize(self, repo: Path, repo_id: str, sha: str) -> Path:
        """An old revision's files in DEEPRL_HOME/cache/hub/NS/NAME/SHA (immutable, built once, renamed in)."""
        dest = home() / "cache" / "hub" / repo_id / sha
        if dest.is_dir():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{sha[:12]}.", dir=dest.parent))
        fd, index = tempfile.mkstemp(prefix=".index.", dir=dest.parent)
        os.close(fd)
        os.unlink(index)
        try:
            env = {"GIT_INDEX_FILE": index, "GIT_WORK_TREE": str(tmp)}
            git(repo, "read-tree", sha, env=env, cwd=tmp)
            git(repo, "checkout-index", "-a", "-f", env=env, cwd=tmp)
            try:
                os.rename(tmp, dest)
            except OSError:  # another reader materialized it first
                if not dest.is_dir():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            try:
                os.unlink(index)
            except OSError:
                pass
        return dest

    def download(self, repo_id: str, revision: str | None = None, dest: Path | None = None) -> Path:
        src = self.resolve(repo_id, revision)
        if dest is None:
            return src
        return copy_tree(src, Path(dest))

    def revisions(self, repo_id: str) -> list[tuple[str, datetime, str]]:
        repo = self._require(repo_id)
        if self._head(repo) is None:
            return []
        out = git(repo, "log", "--format=%H%x00%ct%x00%s", BRANCH)
        revs = []
        for line in out.splitlines():
            sha, ts, subject = line.split("\x00", 2)
            revs.append((sha, datetime.fromtimestamp(int(ts), tz=UTC), subject))
        return revs

    def list_models(self, tag: str | None = None) -> list[ModelInfo]:
        from deeprl.hub.card import card_tags

        models: list[ModelInfo] = []
        if not self.root.is_dir():
            return models
        for ns in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for repo in sorted(p for p in ns.iterdir() if (p / ".git" / "HEAD").is_file()):
                repo_id = f"{ns.name}/{repo.name}"
                try:
                    validate_repo_id(repo_id)
                except UserError:
                    continue
                line = git(repo, "log", "-1", "--format=%H%x00%ct", BRANCH, check=False)
                if not line:
                    continue
                sha, ts = line.split("\x00")
                readme = git(repo, "show", f"{sha}:README.md", check=False)
                tags = card_tags(readme)
                if tag is None or tag in tags:
                    models.append(ModelInfo(repo_id, sha, datetime.fromtimestamp(int(ts), tz=UTC), tags))
        return models


def copy_tree(src: Path, dest: Path) -> Path:
    """Copy a repo's files (not its .git) into dest, replacing files of the same name."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name == ".git":
            continue
        target = dest / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
    return dest
