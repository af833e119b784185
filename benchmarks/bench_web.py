"""Load on the web app with 1,000 models in the database, then Schemathesis against its OpenAPI schema.

    python benchmarks/bench_web.py [--models 1000] [--concurrency 4] [--requests 2000] [--seconds 20]
                                   [--schemathesis-examples 50] [--no-schemathesis]

A temporary DEEPRL_HOME gets a SQLite database with --models repos (latest revision of each evaluated, spread
over Taxi-v3 mostly, so one board holds almost all of them and no page is small by luck). `deeprl serve` runs
in a child process on a free loopback port; a Python load generator (threads, one keep-alive HTTP/1.1 connection
each) sends at most --requests requests or runs for at most --seconds per endpoint, and prints requests/s and
latency percentiles for:
  - the leaderboard page    GET /leaderboard/Taxi-v3            (HTML, 50 rows of the ranked 1,000)
  - the JSON API            GET /api/leaderboard/Taxi-v3        (same rows as JSON)
  - the whole board as JSON GET /api/leaderboard/Taxi-v3?per_page=500
  - a model page             GET /models/user0000/q-...           (HTML: figures, stored card and file list)
  - the same model as JSON   GET /api/models/user0000/q-...
  - the board and model pages again with ?nocache=<a new number each request>: every request misses the page
    cache, so these lines are the cost of rendering from the database
Schemathesis then runs every check on every /api operation (POST /api/refresh answers 403: the benchmark's
server has no admin token).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

CARD_HTML = (
    "<h1>Q-Learning agent</h1><p>A trained <strong>Q-Learning</strong> agent.</p>"
    + "<table><thead><tr><th>key</th><th>value</th></tr></thead><tbody>"
    + "".join(f"<tr><td>param{i}</td><td>{i / 7:.4f}</td></tr>" for i in range(20))
    + "</tbody></table>"
    + "<pre><code>from deeprl import load\nmodel = load(...)</code></pre>"
)
ENVS = [("Taxi-v3", 0.94), ("FrozenLake-v1-4x4-no_slippery", 0.03), ("CartPole-v1", 0.02), ("LunarLander-v2", 0.01)]


def fill(n_models: int, seed: int = 0) -> None:
    import numpy as np

    from deeprl import db
    from deeprl.db import Evaluation, Repo

    rng = np.random.default_rng(seed)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    engine = db.get_engine()
    envs = rng.choice([e for e, _ in ENVS], size=n_models, p=[p for _, p in ENVS])
    repos, evals = [], []
    for i in range(n_models):
        sha = hashlib.sha1(f"bench {i}".encode()).hexdigest()
        when = t0 + timedelta(minutes=int(rng.integers(0, 500_000)))
        mean, std = float(rng.normal(7.0, 1.5)), float(abs(rng.normal(2.5, 0.5)))
        repos.append(
            {
                "id": i + 1,
                "hub": "local",
                "repo_id": f"user{i:04d}/q-{envs[i]}",
                "user": f"user{i:04d}",
                "latest_revision": sha,
                "pushed_at": when,
                "active": True,
                "indexed_at": when,
            }
        )
        evals.append(
            {
                "repo_pk": i + 1,
                "revision": sha,
                "message": "push",
                "pushed_at": when,
                "env": str(envs[i]),
                "algo": "qlearning",
                "claimed_env": str(envs[i]),
                "claimed_mean": round(mean, 2),
                "claimed_std": round(std, 2),
                "mean_reward": mean,
                "std_reward": std,
                "result": mean - std,
                "n_eval_episodes": 100,
                "status": "ok",
                "flagged": bool(rng.random() < 0.05),
                "evaluated_at": when,
                "seconds": 1.0,
                "received_at": when,
                "card_html": CARD_HTML,
                "card_meta": json.dumps({"tags": ["reinforcement-learning", envs[i], "qlearning"]}),
                "files": '[["README.md", 2048], ["config.json", 900], ["model.safetensors", 24000], '
                '["replay.mp4", 180000], ["results.json", 300]]',
            }
        )
    with engine.begin() as conn:
        conn.execute(Repo.__table__.insert(), repos)
        conn.execute(Evaluation.__table__.insert(), evals)


def first_env() -> str:
    from deeprl import db

    with db.session() as s:
        return s.scalar(db.select(db.Evaluation.env).where(db.Evaluation.repo_pk == 1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/envs")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not start in time")


def load(port: int, path: str, *, concurrency: int, max_requests: int, max_seconds: float) -> dict:
    """Closed-loop load: `concurrency` clients, each sending its next request when the last one is answered."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    issued = [0]
    counter = itertools.count()
    stop_at = time.perf_counter() + max_seconds

    def take() -> bool:
        with lock:
            if issued[0] >= max_requests or time.perf_counter() >= stop_at:
                return False
            issued[0] += 1
            return True

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while take():
            t = time.perf_counter()
            try:
                # a distinct ignored parameter per request misses the server's page cache: the render's own cost
                conn.request("GET", path.replace("{n}", str(next(counter))))
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except OSError:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine.append(time.perf_counter() - t)
            if not ok:
                with lock:
                    errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    # warm-up: templates compiled, connection pool and SQLite page cache filled
    for _ in range(20):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", path.replace("{n}", "warm"))
        c.getresponse().read()
        c.close()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(latencies)

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")

    return {
        "path": path,
        "requests": len(lat),
        "errors": errors[0],
        "seconds": wall,
        "rps": len(lat) / wall,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": lat[-1] * 1000 if lat else float("nan"),
    }


def schemathesis(port: int, examples: int) -> int:
    exe = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    if not Path(exe).exists():
        print("schemathesis: not installed (pip install schemathesis); skipped")
        return 0
    cmd = [
        exe,
        "run",
        f"http://127.0.0.1:{port}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(examples),
        "--seed",
        "1",
        "--workers",
        "1",
    ]
    print("$ " + " ".join(cmd[1:]), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    tail = [ln for ln in proc.stdout.splitlines() if ln.strip()][-12:]
    print("\n".join(tail))
    print(f"schemathesis exit status: {proc.returncode} ({'0 failures' if proc.returncode == 0 else 'FAILURES'})")
    return proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--requests", type=int, default=2000, help="at most this many requests per endpoint")
    ap.add_argument("--seconds", type=float, default=20.0, help="at most this long per endpoint")
    ap.add_argument("--schemathesis-examples", type=int, default=50)
    ap.add_argument("--no-schemathesis", action="store_true")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="deeprl-bench-web-"))
    os.environ["DEEPRL_HOME"] = str(home)
    os.environ.pop("DEEPRL_DATABASE_URL", None)
    proc = None
    try:
        t = time.perf_counter()
        fill(args.models)
        print(f"database: {args.models} models in {home / 'deeprl.db'} ({time.perf_counter() - t:.1f} s)")
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "deeprl", "serve", "--port", str(port), "--no-index"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=dict(os.environ),
        )
        wait_ready(port, proc)
        print(
            f"server: deeprl serve on 127.0.0.1:{port}, 1 process; load: {args.concurrency} keep-alive clients, "
            f"<= {args.requests} requests or {args.seconds:g} s per endpoint, on {os.cpu_count()} CPUs"
        )
        print(f"{'endpoint':<48} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'n':>6} {'errors':>6}")
        model = f"user0000/q-{first_env()}"
        for path in (
            "/leaderboard/Taxi-v3",
            "/api/leaderboard/Taxi-v3",
            "/api/leaderboard/Taxi-v3?per_page=500",
            f"/models/{model}",
            f"/api/models/{model}",
            "/leaderboard/Taxi-v3?nocache={n}",
            f"/models/{model}?nocache={{n}}",
        ):
            r = load(port, path, concurrency=args.concurrency, max_requests=args.requests, max_seconds=args.seconds)
            print(
                f"{path:<48} {r['rps']:>8.1f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} "
                f"{r['requests']:>6} {r['errors']:>6}",
                flush=True,
            )
        status = 0
        if not args.no_schemathesis:
            status = schemathesis(port, args.schemathesis_examples)
        return 1 if status else 0
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
