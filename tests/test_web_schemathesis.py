"""Schemathesis against the JSON API with every check, on a real server with rows to find (bounded examples).

The same run as benchmarks/bench_web.py's last step, kept in CI: a 500, a body that breaks its schema, a status
the schema does not list, an input accepted that the schema forbids, or a missing token accepted fails it.
"""

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

TOKEN = "schemathesis-admin-token-0123456789"


def schemathesis_exe() -> str | None:
    exe = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    return exe if Path(exe).exists() else None


pytestmark = pytest.mark.skipif(schemathesis_exe() is None, reason="schemathesis is not installed (test extra)")


@pytest.fixture
def server(monkeypatch):
    import socket

    import uvicorn

    import deeprl.leaderboard as lb
    from deeprl.web import create_app
    from lb_helpers import add_model

    class Report:
        def to_dict(self):
            return {"evaluated": 0}

    monkeypatch.setattr(lb, "index", lambda hub, **kw: Report())  # the refresh itself is tested in test_web
    for i in range(30):
        add_model(f"user{i}/taxi", "Taxi-v3", float(i % 7), pushed=i)
    add_model("zed/broken", "Taxi-v3", 0.0, status="error", error="model.safetensors is corrupt")
    add_model("alice/q-FrozenLake", "FrozenLake-v1-4x4-no_slippery", 1.0, std=0.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(
        uvicorn.Config(
            create_app(admin_token=TOKEN, watch_interval_s=None), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_api_passes_every_schemathesis_check(server):
    cmd = [
        schemathesis_exe(),
        "run",
        f"{server}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "25",
        "--seed",
        "1",
        "--workers",
        "1",
        "-H",
        f"Authorization: Bearer {TOKEN}",
        "--request-timeout",
        "20",
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
    )
    tail = "\n".join(proc.stdout.splitlines()[-60:])
    assert proc.returncode == 0, tail
    assert "generated" in proc.stdout
