"""Where deeprl keeps its data: DEEPRL_HOME (default ~/.cache/deeprl), and the check that a folder can be written.

A folder deeprl is about to write into is checked before the work starts (a run, a push, a download), so a
read-only or impossible path is one sentence naming it, not a traceback minutes later.
"""

import errno
import os
from pathlib import Path

from deeprl.errors import UserError


def home() -> Path:
    """DEEPRL_HOME, created if needed; a path that cannot be a writable folder is a UserError naming it."""
    raw = os.environ.get("DEEPRL_HOME")
    root = Path(raw or Path.home() / ".cache" / "deeprl").expanduser()
    fix = (
        "set DEEPRL_HOME to a folder you can write to"
        if raw
        else "set DEEPRL_HOME to a folder you can write to (for example: export DEEPRL_HOME=$PWD/.deeprl)"
    )
    return writable_folder(root, "DEEPRL_HOME" if raw else "deeprl's data folder", fix)


def writable_folder(path: str | Path, what: str = "The folder", fix: str = "pick another folder") -> Path:
    """Create `path` (and its parents) if needed and make sure it is a folder this process can write to.

    `what` names the folder in the sentence ("DEEPRL_HOME", "The log folder (-f)"), `fix` says what to do."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be created ({why(exc, path)}); {fix}.") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path} is not writable ({_reason(path)}); {fix}.")
    return path


def check_can_create(path: str | Path, what: str = "The path", fix: str = "pick another path") -> Path:
    """Make sure `path` (a file or folder that does not need to exist yet) could be created: its nearest existing
    ancestor is a folder this process can write to. Creates nothing."""
    path = Path(path)
    parent = path.parent if not path.exists() else path
    for ancestor in [parent, *parent.parents]:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise UserError(f"{what} {path} cannot be created ({ancestor} is a file, not a folder); {fix}.")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise UserError(
                    f"{what} {path} cannot be written ({ancestor} is not writable: {_reason(ancestor)}); {fix}."
                )
            break
    return path


def why(exc: OSError, path: str | Path | None = None) -> str:
    """A short reason for an OSError on `path`: which part of the path is a file, read-only, full..."""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOTDIR, errno.EEXIST) and path is not None:
        blocker = _first_file(Path(path))
        if blocker is not None:
            return f"{blocker} is a file, not a folder"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.EROFS:
        return "read-only file system"
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the device"
    return (exc.strerror or str(exc)).lower()


def _first_file(path: Path) -> Path | None:
    """The first component of `path` that exists and is not a folder (what makes mkdir fail), if any."""
    for part in [*reversed(path.parents), path]:
        if part.exists() and not part.is_dir():
            return part
    return None


def _reason(path: Path) -> str:
    try:
        st = os.statvfs(path)
        if st.f_flag & getattr(os, "ST_RDONLY", 1):
            return "read-only file system"
    except OSError:
        pass
    return "permission denied"


def database_url() -> str:
    return os.environ.get("DEEPRL_DATABASE_URL") or f"sqlite:///{home() / 'deeprl.db'}"
