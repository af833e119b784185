"""Attack the leaderboard as a stranger would: push hostile models and cards, index them, fire hostile requests.

Issue 15's holes, each tried for real against a fresh DEEPRL_HOME and a real `deeprl serve` in a child process:
models whose config changes the task, cards that are YAML bombs or quadratic Markdown, a config of nested
brackets, doctored weights, a symlinked card, a backdated commit, then requests that overflow, echo, flood or
cross sites. For each it prints what happened, the server CPU and memory it cost, and PASS or FAIL against the
goals: no attack ranks, none costs more than 1 s of server CPU per request or 100 MB of server memory, zero 500s.

    python benchmarks/attack_web.py            # about a minute on a 2-core laptop
"""

from __future__ import annotations

import http.client
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# the tests' hub helpers (a doctored copy of a pushed model), shared rather than copied; as bench_dqn.py does
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from lb_helpers import doctored, push_folder, staged_copy  # noqa: E402

FL = "FrozenLake-v1-4x4-no_slippery"
BOMB = (
    "---\n"
    + "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9))
    + "tags: [reinforcement-learning]\n---\n# b\n"
)
results: list[tuple[str, bool, str]] = []


def report(name: str, ok: bool, what: str) -> None:
    results.append((name, ok, what))
    print(f"{'PASS' if ok else 'FAIL'}  {name:<44} {what}", flush=True)


# -- the hostile models ------------------------------------------------------------------------------------------


def push_models() -> dict[str, str]:
    """Push the good model and every hostile one; {repo_id: the hole it tries}."""
    import numpy as np

    from deeprl.publish import push_model
    from deeprl.train import train

    run = train(
        "qlearning",
        "FrozenLake-v1",
        env_kwargs={"is_slippery": False},
        log_folder=tempfile.mkdtemp(),
        show_progress=False,
    )
    push_model(run.run_dir, "alice/q-FrozenLake", record_video=False)
    good, kw = "alice/q-FrozenLake", {"map_name": "4x4", "is_slippery": False}
    link = staged_copy(good)
    (link / "README.md").unlink()
    (link / "README.md").symlink_to("/etc/passwd")
    push_folder(link, "mallory/linked-card", "attack")
    attacks = {
        "mallory/long-limit": (
            "1 task: max_episode_steps 2000",
            dict(config={"env_kwargs": {**kw, "max_episode_steps": 2000}}),
        ),
        "mallory/tiny-map": (
            "1 task: hand-made 2x2 desc",
            dict(config={"env_kwargs": {"desc": ["SF", "FG"], "is_slippery": False}}),
        ),
        "mallory/gravity": (
            "1 task: LunarLander gravity -1",
            dict(config={"env_id": "LunarLander-v2", "env_tag": "LunarLander-v2", "env_kwargs": {"gravity": -1.0}}),
        ),
        "mallory/bomb": ("2 card: YAML alias bomb", dict(card=BOMB)),
        "mallory/brackets": ("2 card: 16k '[' (quadratic Markdown)", dict(card="# b\n" + "[" * 16_000)),
        "mallory/pixel": ("6 card: tracking pixel", dict(card="# p\n![](http://tracker.example/p.gif)\n")),
        "mallory/nested": ("8 config: 200 KB of '['", dict(raw_config=b"[" * 200_000)),
        "mallory/wide": ("9 config: net_arch [6000, 6000]", dict(config={"policy": {"net_arch": [6000, 6000]}})),
        "mallory/int64": ("9 weights: int64 Q-table", dict(tensors={"qtable": np.ones((16, 4), np.int64)})),
        "aaron/q-FrozenLake": (
            "5 tie: commit backdated to 2001",
            dict(env={"GIT_COMMITTER_DATE": "2001-01-01T00:00:00Z", "GIT_AUTHOR_DATE": "2001-01-01T00:00:00Z"}),
        ),
    }
    for repo_id, (_, kwargs) in attacks.items():
        doctored(good, repo_id, message="attack", **kwargs)
    out = {k: v[0] for k, v in attacks.items()}
    out["mallory/linked-card"] = "2 card: README.md -> /etc/passwd"
    return out


# -- the server ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def wait_ready(port: int, proc: subprocess.Popen, deadline_s: float = 60.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode}")
        try:
            if request(port, "GET", "/api/envs")[0] == 200:
                return
        except OSError:
            time.sleep(0.05)  # the port is not open yet: poll again
    raise SystemExit("the server did not answer within 60 s")


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="deeprl-attack-"))
    os.environ["DEEPRL_HOME"] = str(home)
    os.environ.pop("DEEPRL_DATABASE_URL", None)
    print(f"DEEPRL_HOME={home}\n-- pushing the good model and {11} hostile ones")
    attacks = push_models()

    print("-- indexing (every revision re-evaluated in the limited child)")
    from deeprl import db
    from deeprl.leaderboard import index, model_detail, ranking, unranked

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    rep = index(timeout_s=120)
    took = time.perf_counter() - started
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    report(
        "index run survives every hostile repo",
        rep.listed == 12 and rep.evaluated == 12 and grew < 100,
        f"{rep.listed} repos, {rep.evaluated} evaluated in {took:.1f} s; indexer peak RSS grew {grew:.0f} MB",
    )
    with db.session() as s:
        ranked = [r["repo_id"] for r in ranking(s, FL)[0]]
        lunar = [r["repo_id"] for r in ranking(s, "LunarLander-v2")[0]]
        rows = {e["repo_id"]: e["error"] for e in unranked(s, None, any_env=True)}
        details = {r: model_detail(s, r) for r in attacks}
    for repo_id, hole in attacks.items():
        latest = details[repo_id]["latest"] or {}
        html = latest.get("card_html") or ""
        if hole.startswith("5"):
            ok = ranked.index(repo_id) > ranked.index("alice/q-FrozenLake")
            report(hole, ok, f"ranked #{ranked.index(repo_id) + 1} behind the first push (pushed_at 2001)")
        elif hole.startswith("2") or hole.startswith("6"):
            leaked = "root:x:0" in html
            ok = not leaked and len(html) < 300_000 and (repo_id != "mallory/pixel" or "tracker" in html)
            report(
                hole,
                ok,
                f"status {latest.get('status')}, stored card {len(html):,} chars"
                + (", /etc/passwd leaked" if leaked else ""),
            )
        else:
            ok = repo_id not in ranked and repo_id not in lunar and repo_id in rows
            report(hole, ok, f"not ranked: {rows.get(repo_id, '(ranked!)')[:90]}")
    paths = [e for e in rows.values() if str(home) in (e or "") or "/tmp/" in (e or "")]
    report("error rows show no server paths", not paths, f"{len(paths)} rows with a path")

    print("-- the server")
    port = free_port()
    env = {**os.environ, "DEEPRL_ADMIN_TOKEN": "attack-bench-admin-token-0123456789"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "deeprl", "serve", "--port", str(port), "--no-index", "--watch-interval", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server_500s = 0
    try:
        wait_ready(port, proc)
        base_rss = rss_mb(proc.pid)

        def hit(name: str, method: str, path: str, *, expect=(200,), check=None, body=None, headers=None, n=1):
            nonlocal server_500s
            c0 = cpu_s(proc.pid)
            statuses, size, hdrs, data = [], 0, {}, b""
            for _ in range(n):
                status, hdrs, data = request(port, method, path, body, headers)
                statuses.append(status)
                size = max(size, len(data))
            per = (cpu_s(proc.pid) - c0) / n
            server_500s += sum(s >= 500 for s in statuses)
            extra = check(hdrs, data) if check else None
            ok = all(s in expect for s in statuses) and per <= 1.0 and extra is None
            shown = sorted(set(statuses))
            report(
                name,
                ok,
                f"HTTP {shown if len(shown) > 1 else shown[0]}, {size:,} bytes, "
                f"{per * 1000:.0f} ms CPU/request" + (f"; {extra}" if extra else ""),
            )

        def no_echo(_h, data):
            return "echoed the input" if b"x" * 200 in data else None

        def has_headers(h, _d):
            low = {k.lower(): v for k, v in h.items()}
            missing = [k for k in ("content-security-policy", "x-content-type-options") if k not in low]
            csp = low.get("content-security-policy", "")
            if "img-src 'self' data:" not in csp:
                missing.append("img-src self/data:")
            return f"missing {', '.join(missing)}" if missing else None

        def html_page(h, _d):
            return None if h.get("content-type", "").startswith("text/html") else f"answered {h.get('content-type')}"

        for repo_id in ("mallory/bomb", "mallory/brackets", "mallory/linked-card", "mallory/pixel"):
            hit(f"model page {repo_id}", "GET", f"/models/{repo_id}", check=has_headers)
        hit("board page=2**62", "GET", f"/leaderboard/{FL}?page={2**62}", expect=(200, 404, 422), check=html_page)
        hit(
            "board per_page=-1 (HTML error page)",
            "GET",
            f"/leaderboard/{FL}?per_page=-1",
            expect=(422, 400),
            check=html_page,
        )
        hit(
            "100 KB query string",
            "GET",
            f"/leaderboard/{FL}?user=" + "x" * 100_000,
            expect=(200, 400, 414, 422, 431),
            check=no_echo,
        )
        hit("API page=2**62", "GET", f"/api/leaderboard/{FL}?page={2**62}", expect=(200, 404, 422))
        hit("static file has security headers", "GET", "/static/style.css", check=has_headers)
        hit(
            "/docs works offline",
            "GET",
            "/docs",
            check=lambda h, d: "loads from a CDN" if b"cdn.jsdelivr" in d or b"unpkg.com" in d else None,
        )
        hit("300 anonymous POST /api/refresh", "POST", "/api/refresh", expect=(401, 403, 429), n=300)
        hit(
            "cross-site form POST /admin/refresh",
            "POST",
            "/admin/refresh",
            body=b"next=/",
            headers={
                "Origin": "http://evil.example",
                "Content-Type": "application/x-www-form-urlencoded",
                "Sec-Fetch-Site": "cross-site",
            },
            expect=(403, 400, 303),
            check=lambda h, _d: None if "refused" in h.get("location", "refused") else f"went to {h['location']}",
        )
        token = {"Authorization": "Bearer attack-bench-admin-token-0123456789"}
        hit(
            "admin POST /api/refresh, twice (cooldown)",
            "POST",
            "/api/refresh",
            headers=token,
            expect=(202, 409, 429),
            n=2,
        )
        grown = rss_mb(proc.pid) - base_rss
        report("server memory across all attacks", grown < 100, f"RSS grew {grown:.0f} MB (from {base_rss:.0f} MB)")
        report("no 500s", server_500s == 0, f"{server_500s} responses were 5xx")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    failed = [name for name, ok, _ in results if not ok]
    print(
        f"-- {len(results) - len(failed)} of {len(results)} checks passed"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    shutil.rmtree(home, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
