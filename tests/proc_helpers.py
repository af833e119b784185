"""Process helpers for the tests that stop runs: a process's descendants, whether one is alive, and a poll for a
training run's first checkpoint (Linux /proc)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{p}/task/{task}/children").read_text().split()
            except FileNotFoundError:
                continue
            for child in map(int, children):
                if child not in out:
                    out.add(child)
                    todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "zombie" not in status.lower()


def start_training(tmp_path: Path, env: str, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "deeprl", "train", "--algo", "appo", "--env", env, "-f", str(tmp_path)]
    cmd += ["--seed", "3", "-n", "100000000", "--quiet", "--hyperparams", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_checkpoint(proc: subprocess.Popen, root: Path, workers: int, deadline_s: float = 120) -> tuple[Path, set]:
    """Poll until the run has written a checkpoint and started its workers: (the run folder, its processes)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        kids = descendants(proc.pid)
        found = list(root.glob("appo/*/checkpoint.safetensors"))
        if found and len(kids) >= workers:
            return found[0].parent, kids
        time.sleep(0.05)
    raise AssertionError("no checkpoint before the deadline")


def left_behind(pids: set[int], deadline_s: float = 15.0) -> list[int]:
    """The processes among `pids` still alive after up to `deadline_s` (an engine may take a moment to exit after
    its owner closed it: poll, do not sleep a fixed time)."""
    deadline = time.monotonic() + deadline_s
    while True:
        living = [pid for pid in pids if alive(pid)]
        if not living or time.monotonic() > deadline:
            return living
        time.sleep(0.05)
