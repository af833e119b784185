"""Mistakes a user can fix get one sentence naming the path or value and exit 2 (issue 15), and a stopped run is a
model that evaluate and push accept.

Read-only folders are tested with a path under a regular file (NotADirectoryError), which fails for root too; the
chmod variants run only when not root (root writes through chmod). A full disk is a `git` on PATH that fails as git
does on a full disk.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli

FROZEN = ["--env", "FrozenLake-v1", "--env-kwargs", "map_name:4x4", "is_slippery:False"]
NOT_ROOT = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders"
)


def one_sentence(out, *needles) -> str:
    """Exit 2, stderr one line 'deeprl: error: ...' holding every needle, no traceback, no 'internal error'."""
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip() and not ln.startswith("note:")]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("deeprl: error: "), out.stderr
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory):
    """A small trained FrozenLake Q-table (solved in a few hundred episodes)."""
    logs = tmp_path_factory.mktemp("logs")
    out = run_cli(
        "train",
        "--algo",
        "qlearning",
        *FROZEN,
        "-f",
        logs,
        "--quiet",
        "--hyperparams",
        "n_training_episodes:2000",
        env={"DEEPRL_HOME": str(logs / "home")},
    )
    assert out.returncode == 0, out.stderr
    return logs / "qlearning" / "FrozenLake-v1-4x4-no_slippery_1"


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder\n")
    return path


# -- an unusable DEEPRL_HOME ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["leaderboard"],
        ["progress", "alice"],
        ["tune", "--algo", "qlearning", "--env", "Taxi-v3", "--n-trials", "1"],
        ["quickstart"],
    ],
    ids=["leaderboard", "progress", "tune", "quickstart"],
)
def test_deeprl_home_under_a_file(args, a_file, tmp_path):
    home = a_file / "home"
    out = run_cli(*args, env={"DEEPRL_HOME": str(home)}, cwd=tmp_path)
    one_sentence(out, home, "DEEPRL_HOME", "is a file")
    assert not (tmp_path / "logs").exists()  # quickstart checked before it trained


def test_deeprl_home_that_is_a_file(frozen_run, a_file):
    out = run_cli("push", frozen_run, "--repo-id", "alice/q-frozen", "--no-video", env={"DEEPRL_HOME": str(a_file)})
    one_sentence(out, a_file, "DEEPRL_HOME")
    assert out.stdout == ""  # refused before the evaluation


@NOT_ROOT
def test_read_only_deeprl_home(frozen_run, tmp_path):
    home = tmp_path / "ro-home"
    home.mkdir()
    home.chmod(0o555)
    try:
        for args in (
            ["push", frozen_run, "--repo-id", "alice/q-frozen", "--no-video"],
            ["leaderboard"],
            ["progress", "alice"],
            ["quickstart", "-f", tmp_path / "logs"],
        ):
            one_sentence(run_cli(*args, env={"DEEPRL_HOME": str(home)}, cwd=tmp_path), home, "not writable")
    finally:
        home.chmod(0o755)


# -- folders given on the command line ----------------------------------------------------------------------------


def test_train_into_a_folder_under_a_file(a_file):
    out = run_cli("train", "--algo", "qlearning", *FROZEN, "-f", a_file / "logs", "--quiet")
    one_sentence(out, a_file / "logs", "-f")


def test_load_into_a_folder_under_a_file(frozen_run, a_file, tmp_path):
    pushed = run_cli("push", frozen_run, "--repo-id", "alice/q-frozen", "--no-video")
    assert pushed.returncode == 0, pushed.stderr
    one_sentence(run_cli("load", "alice/q-frozen", "-f", a_file / "models"), a_file / "models", "-f")
    # without -f it writes models/NAMESPACE/NAME under the current folder
    (tmp_path / "models").write_text("")
    one_sentence(run_cli("load", "alice/q-frozen", cwd=tmp_path), "models", "is a file")


def test_record_into_a_folder_under_a_file(frozen_run, a_file):
    out = run_cli("record", frozen_run, "--out", a_file / "replay.mp4")
    one_sentence(out, a_file / "replay.mp4", "--out")


@NOT_ROOT
def test_read_only_folders(frozen_run, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        one_sentence(run_cli("train", "--algo", "qlearning", *FROZEN, "-f", ro, "--quiet"), ro)
        one_sentence(run_cli("record", frozen_run, "--out", ro / "x.mp4"), ro)
        assert run_cli("push", frozen_run, "--repo-id", "alice/q-frozen", "--no-video").returncode == 0
        one_sentence(run_cli("load", "alice/q-frozen", "-f", ro), ro)
    finally:
        ro.chmod(0o755)


# -- a full disk -----------------------------------------------------------------------------------------------------


def test_full_disk_on_push(frozen_run, tmp_path):
    """git fails as it does on a full disk: the push says so, names the hub folder, and leaves no repository."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_text(
        "#!/bin/sh\necho \"fatal: cannot copy '/usr/share/git-core/templates/hooks' to "
        "'$3/hooks': No space left on device\" >&2\nexit 128\n"
    )
    (fake / "git").chmod(0o755)
    out = run_cli(
        "push",
        frozen_run,
        "--repo-id",
        "alice/q-full",
        "--no-video",
        env={"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"},
    )
    home = Path(os.environ["DEEPRL_HOME"])
    one_sentence(out, home / "hub" / "alice" / "q-full", "no space left")
    assert not (home / "hub" / "alice" / "q-full").exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_full_disk_on_record(frozen_run, tmp_path):
    """The replay's first write lands on /dev/full (every write: ENOSPC): one sentence before ffmpeg starts."""
    out = tmp_path / "videos" / "x.mp4"
    out.parent.mkdir()
    (out.parent / ".x.mp4.part.mp4").symlink_to("/dev/full")
    one_sentence(run_cli("record", frozen_run, "--out", out), out, "no space left")
    assert not out.exists()


@pytest.mark.parametrize(
    "exc, needles",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/replay.mp4"), ["/data/replay.mp4", "no space left"]),
        (PermissionError(errno.EACCES, "Permission denied", "/data/x"), ["/data/x", "permission denied"]),
        (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/x"), ["/mnt/ro/x", "read-only"]),
        (FileExistsError(errno.EEXIST, "File exists", "/etc/hostname"), ["/etc/hostname", "is a file"]),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/etc/hostname/x"), ["/etc/hostname/x", "is a file"]),
    ],
    ids=["ENOSPC", "EACCES", "EROFS", "EEXIST", "ENOTDIR"],
)
def test_last_resort_translation_of_os_errors(monkeypatch, capsys, exc, needles):
    """An OSError no up-front check caught is still one sentence naming the path, exit 2."""
    import deeprl.commands.envs as envs_command
    from deeprl.cli import main

    def fail(args):
        raise exc

    monkeypatch.setattr(envs_command, "run", fail)
    assert main(["envs"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("deeprl: error: ") and "internal error" not in err
    for needle in needles:
        assert needle in err


def test_other_os_errors_stay_ours(monkeypatch, capsys):
    import deeprl.commands.envs as envs_command
    from deeprl.cli import main

    def fail(args):
        raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")

    monkeypatch.setattr(envs_command, "run", fail)
    assert main(["envs"]) == 1
    assert "internal error" in capsys.readouterr().err


# -- values --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["-1", str(2**32), "1.5"])
def test_bad_seed_leaves_no_run_folder(value, tmp_path):
    out = run_cli("train", "--algo", "qlearning", *FROZEN, "-f", tmp_path / "logs", "--seed", value, "--quiet")
    one_sentence(out, "--seed", value, "4294967295")
    assert not (tmp_path / "logs" / "qlearning").exists() or not any((tmp_path / "logs" / "qlearning").iterdir())


def test_bad_seed_in_the_library_leaves_no_run_folder(tmp_path):
    from deeprl.errors import UserError
    from deeprl.train import train

    with pytest.raises(UserError, match="--seed"):
        train("qlearning", "FrozenLake-v1", seed=-1, log_folder=tmp_path, show_progress=False)
    assert not list(tmp_path.rglob("config.json"))


@pytest.mark.parametrize("command", [["push", "x", "--repo-id", "a/b"], ["record", "x"], ["quickstart"]])
def test_bad_seed_elsewhere(command):
    one_sentence(run_cli(*command, "--seed", "-1"), "--seed", "-1")


# -- stopped and finished runs -------------------------------------------------------------------------------------

STOPPABLE = {
    "qlearning": [*FROZEN, "--hyperparams", "n_training_episodes:1000000000", "checkpoint_every:2000"],
    "reinforce": ["--env", "CartPole-v1", "--hyperparams", "n_training_episodes:1000000000", "checkpoint_every:5"],
    "ppo": [
        "--env",
        "CartPole-v1",
        "-n",
        "100000000",
        "--hyperparams",
        "n_envs:2",
        "n_steps:64",
        "batch_size:128",
        "n_epochs:1",
        "checkpoint_every:1",
        "checkpoint_seconds:0",
    ],
    "dqn": [
        "--env",
        "CartPole-v1",
        "-n",
        "100000000",
        "--hyperparams",
        "buffer_size:2000",
        "learning_starts:64",
        "checkpoint_freq:200",
    ],
}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("algo", list(STOPPABLE))
def test_stopped_run_is_a_model(algo, sig, tmp_path):
    if sig == signal.SIGTERM and algo in ("reinforce", "dqn"):
        pytest.skip("one signal per algorithm is enough beyond Q-Learning and PPO")  # keeps the sweep short
    cmd = [
        sys.executable,
        "-m",
        "deeprl",
        "train",
        "--algo",
        algo,
        *STOPPABLE[algo],
        "-f",
        str(tmp_path),
        "--device",
        "cpu",
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run_dir = tmp_path / algo
    deadline = time.monotonic() + 120
    try:
        while not list(run_dir.glob("*/checkpoint.safetensors")):  # training is under way once it checkpoints
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err.decode()
    (folder,) = run_dir.iterdir()
    assert (folder / "model.safetensors").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert config["status"] == "stopped"
    ev = run_cli("evaluate", folder, "--n-eval-episodes", "2", "--json")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["n_eval_episodes"] == 2


def test_resume_of_a_finished_run_says_so(tmp_path):
    args = ["train", "--algo", "qlearning", *FROZEN, "-f", tmp_path, "--quiet"]
    assert run_cli(*args, "--hyperparams", "n_training_episodes:200").returncode == 0
    model = tmp_path / "qlearning" / "FrozenLake-v1-4x4-no_slippery_1" / "model.safetensors"
    before = model.stat().st_mtime_ns, model.read_bytes()
    out = run_cli(*args, "--resume")
    one_sentence(out, "finished already", "200 episodes", "n_training_episodes")
    assert (model.stat().st_mtime_ns, model.read_bytes()) == before  # not saved again
    # a larger budget continues it
    more = run_cli(*args, "--resume", "--hyperparams", "n_training_episodes:400")
    assert more.returncode == 0, more.stderr


def test_resume_of_a_finished_ppo_run_says_so(tmp_path):
    args = ["train", "--algo", "ppo", "--env", "CartPole-v1", "-f", tmp_path, "--quiet", "--device", "cpu"]
    hp = ["--hyperparams", "n_envs:2", "n_steps:64", "batch_size:128", "n_epochs:1"]
    assert run_cli(*args, "-n", "100", *hp).returncode == 0
    one_sentence(run_cli(*args, "--resume"), "finished already", "128 steps", "-n N")


def test_progress_never_counts_past_its_total(tmp_path):
    """PPO trains whole rollouts: -n 1 with rollouts of 2 x 64 steps is 128 steps, and the count says 128/128."""
    import re

    out = run_cli(
        "train",
        "--algo",
        "ppo",
        "--env",
        "CartPole-v1",
        "-f",
        tmp_path,
        "-n",
        "1",
        "--device",
        "cpu",
        "--hyperparams",
        "n_envs:2",
        "n_steps:64",
        "batch_size:128",
        "n_epochs:1",
    )
    assert out.returncode == 0, out.stderr
    counts = [(int(a), int(b)) for a, b in re.findall(r"\] (\d+)/(\d+) steps", out.stderr)]
    assert counts and counts[-1] == (128, 128), out.stderr
    assert all(done <= total for done, total in counts)


def test_progress_total_grows_rather_than_overflow():
    from deeprl.log import Progress

    p = Progress(10, "steps", enabled=False)
    p.update(32)
    assert (p.done, p.total) == (32, 32)


def test_unwritable_folders_without_root(monkeypatch, capsys, tmp_path, frozen_run):
    """What a read-only folder looks like to a user who is not root (os.access says no), checked as root too."""
    from deeprl.cli import main

    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != ro and real_access(p, mode, **kw))
    cases = [
        (["train", "--algo", "qlearning", *FROZEN, "-f", str(ro), "--quiet"], "-f"),
        (["record", str(frozen_run), "--out", str(ro / "x.mp4")], "--out"),
        (["load", "alice/q-frozen", "-f", str(ro)], "-f"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(ro) in err and "not writable" in err and needle in err, err
    monkeypatch.setenv("DEEPRL_HOME", str(ro))
    assert main(["leaderboard"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"DEEPRL_HOME {ro} is not writable" in err, err
    assert not list(ro.iterdir())
