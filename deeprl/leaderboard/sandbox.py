"""A pushed revision evaluated in a child process, and the list of its files.

The indexer (indexer.py) hands each revision's folder to `evaluate_folder`: a read-only copy of the few files the
verifier reads goes to a fresh folder, and `python -m deeprl.verify` evaluates it by the course protocol under
CPU, memory, file-size and wall-clock limits with a scrubbed environment, so a model that hangs, eats memory or
crashes costs one row with a reason, never the index. `list_files` is the bounded file list a model page shows.

A model reaches the child either as a folder on this machine or as its files packed into a dict (`pack`): a job
sent to another machine (deeprl.dispatch: a pool slot or a Ray task) carries the packed files, and `evaluate_job`
evaluates them there in the same limited child. Both give the same copy, so the same verdict.

A repo comes in one of two formats, told apart by its top-level file names alone (`model_files`): deeprl's
(config.json + model.safetensors, read by `python -m deeprl.verify`) or Stable-Baselines3's, as the course's
`package_to_hub` pushes it (one `.zip`, maybe `vec_normalize.pkl`; read in the child by `sb3_child`, which converts
it without unpickling anything and then verifies it as deeprl's). Only those files are copied, fetched from a hub
(deeprl.hub.hf `download_files`) and sized before they are fetched: a course repo's replay video and unzipped
copy stay where they are.
"""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

DEFAULT_TIMEOUT_S = 600.0
DEFAULT_MEMORY_MB = 4096
MAX_FILES = 500  # listed per revision (the page shows them); a repo with more is listed up to this many
MAX_DEPTH = 8
# what the verifier reads, with the most it may copy of each (a bigger weights file is refused by modelio anyway)
COPIED = {"config.json": 1 << 20, "model.safetensors": 512 << 20, "README.md": 256 << 10}
# an SB3-format repo's: its zip (under one fixed name, whatever the repo calls it), VecNormalize's statistics, the
# card. The course's largest zip (Unit 3's Atari DQN, with its target network and optimizer) is about 27 MB.
SB3_ZIP = "model.zip"
SB3_COPIED = {SB3_ZIP: 256 << 20, "vec_normalize.pkl": 16 << 20, "README.md": 256 << 10}
BUDGETS = {**COPIED, **SB3_COPIED}
# the only variables the child sees: nothing of the server's (tokens, database URL, DEEPRL_HOME) reaches a model
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV")
# a model: its folder on this machine, or the files the verifier reads, packed (pack) to travel with a job
Model: TypeAlias = "Path | str | Mapping[str, bytes]"


def _limits(memory_mb: int, timeout_s: float) -> Callable[[], None]:
    def apply() -> None:
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


def repo_format(names: Iterable[str]) -> str:
    """'stable-baselines3' for a repo without model.safetensors whose top level holds a .zip, else 'deeprl'."""
    names = list(names)
    zipped = any(n.lower().endswith(".zip") and "/" not in n for n in names)
    return "stable-baselines3" if zipped and "model.safetensors" not in names else "deeprl"


def model_files(sizes: Mapping[str, int | None], name: str | None = None, *, sized: bool = False) -> dict[str, str]:
    """{name in the child's copy: file in the repo} of the files the verifier reads, from the repo's top-level
    files and their sizes (None: unknown); ValueError (one sentence) for a repo whose SB3 zip cannot be told and,
    when `sized` (before a download), for a file over its budget. (A copy on this machine is cut at the budget
    instead, so that the verifier says what is wrong with the file.)

    deeprl's format is config.json + model.safetensors; a repo without model.safetensors whose top level holds a
    `.zip` is SB3's (huggingface_sb3 also writes a config.json, SB3's own `data`: it is not read). Of several zips
    the one named after the repo (`name`) is the model, as package_to_hub names it.
    """
    zips = sorted(f for f in sizes if f.lower().endswith(".zip") and "/" not in f)
    if repo_format(sizes) == "deeprl":
        wanted = {f: f for f in COPIED if f in sizes}
    else:
        if len(zips) > 1:
            named = [z for z in zips if name and z[:-4] == name]
            if not named:
                raise ValueError(
                    f"the repo holds {len(zips)} .zip files ({', '.join(zips[:5])}) and none is named after the repo "
                    f"({name}.zip), so its SB3 model cannot be told"
                )
            zips = named
        wanted = {SB3_ZIP: zips[0], **{f: f for f in ("vec_normalize.pkl", "README.md") if f in sizes}}
    for staged, src in wanted.items() if sized else ():
        size, budget = sizes[src], BUDGETS[staged]
        if size is not None and size > budget:
            raise ValueError(
                f"{src} is larger than {budget / 2**20:g} MiB ({size / 2**20:.1f} MiB), the most the leaderboard "
                "reads of it; it was not downloaded"
            )
    return wanted


def _folder_files(folder: Path, link_root: Path | None, name: str | None) -> dict[str, Path]:
    """model_files for a folder on this machine: {staged name: its plain file}. The files of known names are
    looked up by name; only the zips are searched for (among the first MAX_FILES entries)."""
    try:
        zips = [e.name for _, e in zip(range(MAX_FILES), os.scandir(folder)) if e.name.lower().endswith(".zip")]
    except OSError:
        zips = []
    sizes: dict[str, int | None] = {}
    known = [n for n in BUDGETS if n != SB3_ZIP]  # SB3_ZIP names the copy; a repo's own model.zip is a zip found
    for n in dict.fromkeys([*known, *zips]):
        st = _plain_file(folder / n, link_root)
        if st is not None:
            sizes[n] = st.st_size
    return {staged: folder / src for staged, src in model_files(sizes, name).items()}


def _copy(src: Path, dest: Path, budget: int) -> None:
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        left = budget + 1
        while left > 0:
            chunk = fin.read(min(left, 1 << 20))
            if not chunk:
                break
            fout.write(chunk)
            left -= len(chunk)
    os.chmod(dest, 0o444)


def stage_copy(folder: Path, dest: Path, link_root: Path | None = None, name: str | None = None) -> None:
    """A read-only copy of the files the verifier reads (model_files): plain files only (a link to /etc/passwd
    named README.md stays behind). ValueError when model_files refuses the folder."""
    files = _folder_files(Path(folder), link_root, name)
    dest.mkdir()
    for staged, src in files.items():
        _copy(src, dest / staged, BUDGETS[staged])
    os.chmod(dest, 0o555)


def pack(folder: Path, link_root: Path | None = None, name: str | None = None) -> dict[str, bytes]:
    """The files stage_copy would copy, as bytes, each cut at its size budget plus one byte (so one that is too
    big still fails to load). OSError when one cannot be read; ValueError when model_files refuses the folder."""
    files = {}
    for staged, src in _folder_files(Path(folder), link_root, name).items():
        with open(src, "rb") as fh:
            files[staged] = fh.read(BUDGETS[staged] + 1)
    return files


def unpack(files: Mapping[str, bytes], dest: Path) -> None:
    """stage_copy's read-only folder from packed files (names other than the verifier's are dropped)."""
    dest.mkdir()
    for name, budget in BUDGETS.items():
        data = files.get(name)
        if isinstance(data, bytes):
            (dest / name).write_bytes(data[: budget + 1])
            os.chmod(dest / name, 0o444)
    os.chmod(dest, 0o555)


def stage(model: Model, dest: Path, link_root: Path | None = None, name: str | None = None) -> None:
    """A read-only copy of `model` (a folder or packed files) in `dest`, for a limited child."""
    if isinstance(model, Mapping):
        unpack(model, dest)
    else:
        stage_copy(Path(model), dest, link_root, name)


# The child for an SB3 copy: sb3_child below, imported rather than run with -m (which would import this module
# twice, once through the package)
SB3_CHILD = "import sys; from deeprl.leaderboard.sandbox import sb3_child; sys.exit(sb3_child(sys.argv[1:]))"


def verifier(model: Path, name: str | None) -> list[str]:
    """The child's arguments for a staged copy: sb3_child for an SB3 zip (given the repo's name, one place its env
    may be named), deeprl.verify otherwise."""
    if (model / SB3_ZIP).is_file():
        return ["-c", SB3_CHILD, str(model), *([name] if name else [])]
    return ["-m", "deeprl.verify", str(model)]


def verify_sb3(folder: Path, name: str | None, card: dict) -> dict:
    """deeprl.verify's verdict for the SB3 repo copied into `folder` (in the limited child): the zip read as
    everywhere in deeprl (deeprl.sb3: nothing unpickled), checked against the course task the repo's card or name
    names (deeprl.sb3.course_task), converted to deeprl's format, then verified as any deeprl model."""
    from deeprl import sb3
    from deeprl.envs import make_env
    from deeprl.errors import UserError
    from deeprl.modelio import save_model
    from deeprl.verify import verdict

    tag = sb3.course_task(card, name)
    if tag is None:
        return {
            "status": "error",
            "algo": None,
            "error": "the repo names no env the leaderboard ranks: neither its card's tags, its card's results nor "
            "its name (the course's ppo-LunarLander-v2, say) is a course env",
        }
    zip_path = folder / SB3_ZIP
    out: dict = {"env": tag, "algo": None}
    try:
        model = sb3.read_zip(zip_path)
        out["algo"] = model.algo
        built = make_env(tag)
        try:
            why = sb3.fits(model, built)
        finally:
            built.close()
        if why:
            return {
                **out,
                "status": "error",
                "error": f"the SB3 model does not play {tag}, the env the repo names: {why}",
            }
        config, tensors = sb3.with_statistics(model, *sb3.to_deeprl(model, tag))
        converted = Path(tempfile.mkdtemp(prefix="sb3-"))  # in the child's own TMPDIR
        save_model(converted, tensors, config)
    except UserError as exc:
        return {**out, "status": "error", "error": str(exc).replace(str(zip_path), "the repo's SB3 zip")[:1000]}
    return verdict(converted)


def sb3_child(argv: list[str]) -> int:
    """The limited child for an SB3 copy (FOLDER [REPO_NAME]): deeprl.verify's two lines, the card then the
    verdict of verify_sb3."""
    from deeprl.verify import card_line

    if len(argv) not in (1, 2):
        print("usage: sb3_child MODEL_FOLDER [REPO_NAME]", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    card = card_line(folder)
    print(json.dumps({"verdict": verify_sb3(folder, argv[1] if len(argv) == 2 else None, card)}), flush=True)
    return 0


def evaluate_folder(
    folder: Model,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    link_root: Path | None = None,
    name: str | None = None,
) -> dict:
    """Verify a model folder (or its packed files) in a limited child (deeprl.verify, or deeprl.sb3 for an SB3
    repo; `name` is the repo's NAME): {'card': {...} or None, 'verdict': {...}}.

    The child gets a scrubbed environment, a temporary folder of its own as HOME, DEEPRL_HOME and working folder,
    and a read-only copy of the files it needs, under CPU, memory, file-size and wall-clock limits. A child that
    dies keeps the card it printed first; the verdict then says why it died.
    """
    with tempfile.TemporaryDirectory(prefix="deeprl-verify-") as tmp:
        model = Path(tmp) / "model"
        try:
            stage(folder, model, link_root, name)
        except OSError as exc:
            return {
                "card": None,
                "verdict": {"status": "error", "error": f"could not copy the model for verification ({exc.strerror})"},
            }
        except ValueError as exc:
            return {"card": None, "verdict": {"status": "error", "error": str(exc)}}
        work = Path(tmp) / "work"
        work.mkdir()
        try:
            child = run_child(verifier(model, name), work, timeout_s=timeout_s, memory_mb=memory_mb)
        finally:
            unstage(model)
        if child.started is False:
            return {
                "card": None,
                "verdict": {"status": "error", "error": f"could not start the evaluation: {child.error_text}"},
            }
    found: dict = {"card": None, "verdict": None}
    for item in json_objects(child.out):
        for key in ("card", "verdict"):
            if isinstance(item.get(key), dict):
                found[key] = item[key]
    if child.timed_out or found["verdict"] is None or child.returncode != 0:
        died = f"the evaluation took longer than {timeout_s:g} s and was stopped" if child.timed_out else None
        found["verdict"] = {"status": "error", "error": died or _death(child.returncode, child.err, memory_mb)}
    return found


@dataclass(frozen=True)
class EvalJob:
    """One revision's evaluation as a job (deeprl.dispatch): its packed files, or why they could not be read."""

    files: Mapping[str, bytes] | None
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    error: str | None = None
    name: str | None = None  # the repo's NAME: where an SB3 repo's card names no env, its name may


def evaluate_job(job: EvalJob) -> dict:
    """evaluate_folder on a job's files, wherever the job runs: {'card', 'verdict', 'seconds'}."""
    import time

    t0 = time.perf_counter()
    if job.files is None:
        found: dict = {"card": None, "verdict": {"status": "error", "error": job.error or "no files to evaluate"}}
    else:
        found = evaluate_folder(job.files, timeout_s=job.timeout_s, memory_mb=job.memory_mb, name=job.name)
    found["seconds"] = round(time.perf_counter() - t0, 3)
    return found


def evaluation_failed(job: EvalJob, why: str) -> dict:
    """The row of an evaluation job that did not return (deeprl.dispatch's `failed`)."""
    return {"card": None, "verdict": {"status": "error", "error": f"the evaluation could not run ({why})"}}


@dataclass
class Child:
    """What a limited child left: its exit status, its output, whether it ran past its time and was killed."""

    started: bool
    returncode: int | None = None
    out: bytes = b""
    err: bytes | str = b""
    timed_out: bool = False

    @property
    def error_text(self) -> str:
        """`err` as text: the reason it could not start, or what it wrote to stderr."""
        return _text(self.err)


def child_env(work: Path) -> dict:
    """The scrubbed environment of a limited child whose HOME, TMPDIR and DEEPRL_HOME are `work`."""
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    # one thread per child: the index and the league run beside a web server on a small machine
    env.update(
        HOME=str(work),
        TMPDIR=str(work),
        DEEPRL_HOME=str(work / "home"),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        PYTHONHASHSEED="0",
        PYTHONDONTWRITEBYTECODE="1",
        SDL_VIDEODRIVER="dummy",
        MPLBACKEND="Agg",
        HF_HUB_OFFLINE="1",
    )
    return env


def run_child(
    args: list[str], work: Path, *, timeout_s: float = DEFAULT_TIMEOUT_S, memory_mb: int = DEFAULT_MEMORY_MB
) -> Child:
    """`python ARGS` in `work` with child_env and the CPU, memory, file-size and wall-clock limits (the verifier's
    and the league's games both run this way). A child whose waiter is interrupted (Ctrl-C) is killed with it."""
    try:
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=work,
            env=child_env(work),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            preexec_fn=_limits(memory_mb, timeout_s),
        )
    except OSError as exc:
        return Child(started=False, err=str(exc))
    me = threading.get_ident()
    with _LIVE_LOCK:
        _LIVE.setdefault(me, set()).add(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill(proc)
        out, err = proc.communicate()
        timed_out = True
    except BaseException:  # interrupted: the child is in a session of its own, so Ctrl-C did not reach it
        _kill(proc)
        proc.wait()
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE[me].discard(proc.pid)
            if not _LIVE[me]:
                del _LIVE[me]
    return Child(started=True, returncode=proc.returncode, out=out, err=err, timed_out=timed_out)


# the limited children running, by the thread waiting on each (a pool that closes early stops its own)
_LIVE: dict[int, set[int]] = {}
_LIVE_LOCK = threading.Lock()


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)
    except OSError:
        proc.kill()


def stop_children(threads: Iterable[int]) -> int:
    """Kill the limited children that these threads wait on (their run_child calls then return, as from a child
    that was killed); how many. deeprl.dispatch's local pool calls it when it closes with jobs still running."""
    with _LIVE_LOCK:
        pids = [pid for t in threads for pid in _LIVE.get(t, ())]
    for pid in pids:
        try:
            os.killpg(pid, 9)
        except OSError:
            pass
    return len(pids)


def json_objects(out: bytes, last: int = 10) -> list[dict]:
    """The JSON objects a child printed, one a line, among its last `last` lines (anything else is skipped)."""
    found = []
    for line in out.decode(errors="replace").splitlines()[-last:]:
        if line.startswith("{") and len(line) < (4 << 20):
            try:
                item = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(item, dict):
                found.append(item)
    return found


def unstage(folder: Path) -> None:
    """Make a stage_copy removable again (its files and folder are read-only)."""
    for p in (folder, *folder.iterdir()):
        os.chmod(p, 0o700)


def death(returncode: int | None, err: bytes | str, memory_mb: int, what: str = "the evaluation") -> str:
    """One sentence for a child that printed no result (`what` names its job)."""
    return _death(returncode, err, memory_mb).replace("the evaluation", what, 1)


def _text(err: bytes | str) -> str:
    """A Child's err as text: its stderr, or the reason it could not start."""
    return err if isinstance(err, str) else err.decode(errors="replace")


def _death(returncode: int | None, err: bytes | str, memory_mb: int) -> str:
    """One sentence for a child that printed no verdict."""
    text = _text(err)[-4000:]
    if returncode is not None and returncode < 0:
        sig = -returncode
        why = {9: "killed", 24: "over its CPU time limit", 11: "crashed (segmentation fault)"}.get(sig, "killed")
        return f"the evaluation was {why} (signal {sig}); memory limit {memory_mb} MiB"
    if any(
        s in text
        for s in ("MemoryError", "Cannot allocate memory", "failed to map segment", "bad_alloc", "out of memory")
    ):
        return f"the evaluation ran out of memory (limit {memory_mb} MiB)"
    last = [ln.strip() for ln in text.splitlines() if ln.strip()][-1:] or [f"exit status {returncode}"]
    return f"the evaluation failed ({last[0][:200]})"
