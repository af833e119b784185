"""Benchmark: the whole push of a Taxi Q-Learning agent, and N processes pushing to one repo at once.

    python benchmarks/bench_push.py [--repeats 3] [--pushers 20] [--episodes 25000]

Part 1 trains a Taxi agent (course hyperparameters), then times `push_model` to the local hub and breaks it
down into evaluate (100 episodes, the course's seeds) / video (replay.mp4) / card (README, results, config,
copy) / commit (git, under the lock). The target: a push costs about its evaluation plus its video.

Part 2 starts N `deeprl push` processes on the same repo at the same moment and checks the outcome:
N commits, `git fsck --strict` clean, and every commit whole (its weights load and match, its card and
results parse and agree, its replay decodes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def part1(run_dir: Path, repeats: int) -> None:
    from deeprl.publish import push_model

    rows = []
    for i in range(repeats):
        t = {}
        push_model(run_dir, "bench/taxi-single", commit_message=f"bench {i}", timings=t)
        rows.append(t)
    keys = ["evaluate_s", "video_s", "card_s", "commit_s", "total_s"]
    med = {k: statistics.median(r[k] for r in rows) for k in keys}
    print(f"\n== one push of a Taxi Q-table to the local hub (median of {repeats}) ==")
    for k in keys:
        print(f"  {k[:-2]:<9} {med[k]:7.3f} s")
    overhead = med["total_s"] - med["evaluate_s"] - med["video_s"]
    print(
        f"  push overhead beyond evaluate + video: {overhead:.3f} s "
        f"({overhead / med['total_s']:.0%} of the push; card includes importing huggingface_hub once)"
    )


def check_commit(repo: Path, sha: str, model_bytes: bytes) -> None:
    from deeprl.hub import resolve_repo
    from deeprl.hub.card import read_claim
    from deeprl.video import probe

    folder = resolve_repo("bench/taxi-many", sha)
    assert (folder / "model.safetensors").read_bytes() == model_bytes, f"{sha}: weights differ"
    results = json.loads((folder / "results.json").read_text())
    claim = read_claim(folder / "README.md")
    assert claim and claim["mean"] == round(results["mean_reward"], 2), f"{sha}: card and results disagree"
    json.loads((folder / "config.json").read_text())
    info = probe(folder / "replay.mp4")
    assert info["codec"].startswith("h264") and info["frames"] > 0, f"{sha}: replay does not decode"


def part2(run_dir: Path, n: int, home: Path) -> None:
    env = {**os.environ, "DEEPRL_HOME": str(home)}
    print(f"\n== {n} processes pushing to one repo at once ==")
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deeprl",
                "push",
                str(run_dir),
                "--repo-id",
                "bench/taxi-many",
                "--commit-message",
                f"pusher {i}",
                "--json",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a pusher failed ({p.returncode}): {err.strip()}")
        outs.append(json.loads(out))
    wall = time.perf_counter() - t0
    repo = home / "hub" / "bench" / "taxi-many"
    log = subprocess.run(
        ["git", "-C", str(repo), "log", "--format=%H %s"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    shas = {o["revision"] for o in outs}
    fsck = subprocess.run(["git", "-C", str(repo), "fsck", "--strict", "--full"], capture_output=True, text=True)
    model_bytes = (run_dir / "model.safetensors").read_bytes()
    t = time.perf_counter()
    for sha in shas:
        check_commit(repo, sha, model_bytes)
    messages = sorted(line.split(" ", 1)[1] for line in log)
    print(f"  wall time for all {n} pushes: {wall:.1f} s ({wall / n:.2f} s per push, 2 pushes' CPU shared)")
    print(f"  commits in the repo: {len(log)} (expected {n}); distinct revisions reported: {len(shas)}")
    print(f"  every pusher's message present: {messages == sorted(f'pusher {i}' for i in range(n))}")
    fsck_clean = fsck.returncode == 0 and not fsck.stdout.strip()
    print(f"  git fsck --strict --full: {'clean' if fsck_clean else fsck.stdout + fsck.stderr}")
    print(f"  every commit whole (weights, card, results, replay): yes ({time.perf_counter() - t:.1f} s to check)")
    ok = len(log) == n and len(shas) == n and fsck.returncode == 0
    print(f"  RESULT: {'OK' if ok else 'FAILED'}")
    if not ok:
        raise SystemExit(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pushers", type=int, default=20)
    ap.add_argument("--episodes", type=int, default=None, help="Taxi training episodes (default: the course's)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="deeprl-bench-push-") as tmp:
        tmp = Path(tmp)
        os.environ["DEEPRL_HOME"] = str(tmp / "home")
        from deeprl.train import train

        overrides = {"n_training_episodes": a.episodes} if a.episodes else None
        run = train("qlearning", "Taxi-v3", overrides=overrides, log_folder=tmp / "logs", show_progress=False)
        print(f"trained Taxi-v3 Q-table in {run.run_dir}")
        part1(run.run_dir, a.repeats)
        part2(run.run_dir, a.pushers, tmp / "home")


if __name__ == "__main__":
    main()
