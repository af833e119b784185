import os
import subprocess
import sys

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own DEEPRL_HOME, so no test sees another's hub or database."""
    home = tmp_path_factory.mktemp("deeprl_home")
    monkeypatch.setenv("DEEPRL_HOME", str(home))
    monkeypatch.delenv("DEEPRL_DATABASE_URL", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # a shell's cluster must not receive the tests' jobs
    yield home


def run_cli(*args, env=None, cwd=None, timeout=300):
    """Run `python -m deeprl ARGS` in a subprocess; returns CompletedProcess (text)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "deeprl", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli
