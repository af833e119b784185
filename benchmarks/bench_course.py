"""The whole course as one benchmark: how long each assignment takes to pass, on the defaults, seed 0.

For every assignment deeprl can train, it trains seed 0 with the embedded defaults, evaluates the policy by the
course protocol every so often (a snapshot, saved and loaded as `deeprl evaluate` would, with the run's random
state put back afterwards, so watching never changes the run), and records the training wall-clock (evaluation
time excluded) and the count (env steps, or episodes for the tabular and REINFORCE rows) at which the result first
reaches the assignment's minimum; the run stops there. It prints one table with the sum and saves it as JSON.

This is the guard for refactors (issue 19): run it before and after, and every time-to-minimum should agree
within noise. The seeds are fixed, so on one machine a change that keeps the arithmetic gives the same counts.

    python benchmarks/bench_course.py --quick       # the cheap rows (minutes); the others come from the last full run
    python benchmarks/bench_course.py               # every row (hours on a laptop: Space Invaders and SoccerTwos)
    python benchmarks/bench_course.py --only unit1   # some rows, by key

Rows whose assignment is "push only" (8.1, 7) get a target of our own, named in the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from deeprl.loop import Callback, evaluate_snapshot
from deeprl.train import train

RESULTS = Path(__file__).parent / "results" / "bench_course.json"


@dataclass(frozen=True)
class Row:
    key: str
    unit: str
    algo: str
    env: str
    env_kwargs: dict
    target: float  # on result = mean - std
    every: int  # evaluate every this many (steps or episodes)
    quick: bool
    note: str = ""


ROWS = (
    Row("unit1", "1", "ppo", "LunarLander-v2", {}, 200.0, 50_000, False),
    Row("unit2-taxi", "2", "qlearning", "Taxi-v3", {}, 4.5, 1_000, True),
    Row(
        "unit2-frozenlake", "2", "qlearning", "FrozenLake-v1", {"map_name": "4x4", "is_slippery": False}, 1.0, 100, True
    ),
    Row("unit3", "3", "dqn", "SpaceInvadersNoFrameskip-v4", {}, 200.0, 50_000, False),
    Row("unit4-cartpole", "4", "reinforce", "CartPole-v1", {}, 350.0, 50, True),
    Row("unit4-pixelcopter", "4", "reinforce", "Pixelcopter-PLE-v0", {}, 5.0, 1_000, False),
    Row("unit6", "6", "a2c", "PandaReachDense-v3", {}, -3.5, 5_000, True),
    Row(
        "unit7",
        "7",
        "selfplay",
        "SoccerTwos",
        {},
        0.0,
        1_000_000,
        False,
        "push only; target: the scripted team beaten on average (result >= 0)",
    ),
    Row(
        "unit8.1",
        "8.1",
        "ppo",
        "CartPole-v1",
        {},
        250.0,
        10_000,
        True,
        "push only; target: half of CartPole's 500 within CleanRL's 50k-step budget",
    ),
)


class Watch(Callback):
    """Evaluate a snapshot every `every` counts; stop the run at the first result >= target."""

    def __init__(self, row: Row, folder: Path):
        self.row, self.folder, self.next_at = row, folder, row.every
        self.eval_s = 0.0
        self.passed: dict | None = None
        self.history: list[dict] = []
        self.started = time.perf_counter()

    def on_update(self, run, count: int, snapshot) -> bool:
        if count < self.next_at:
            return False
        self.next_at = (count // self.row.every + 1) * self.row.every
        t0 = time.perf_counter()
        result = self.evaluate(run, snapshot)
        self.eval_s += time.perf_counter() - t0
        train_s = time.perf_counter() - self.started - self.eval_s
        self.history.append({"count": count, "result": round(result, 3), "train_seconds": round(train_s, 2)})
        print(f"  {self.row.key}: {count:,} -> result {result:.2f} ({train_s:.1f} s training)", flush=True)
        if result >= self.row.target:
            self.passed = self.history[-1]
            return True
        return False

    def evaluate(self, run, snapshot) -> float:
        folder = self.folder / f"eval-{len(self.history)}"
        return float(evaluate_snapshot(run, snapshot, folder)["result"])


def run_row(row: Row) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-course-{row.key}-") as tmp:
        watch = Watch(row, Path(tmp))
        started = time.perf_counter()
        run = train(
            row.algo, row.env, env_kwargs=row.env_kwargs, seed=0, log_folder=tmp, show_progress=False, callbacks=[watch]
        )
        wall = time.perf_counter() - started
    unit = "episodes" if row.algo in ("qlearning", "reinforce") else "steps"
    out = {
        "key": row.key,
        "unit_no": row.unit,
        "algo": row.algo,
        "env": run.env_tag,
        "target": row.target,
        "count_unit": unit,
        "evaluations": watch.history,
        "eval_seconds": round(watch.eval_s, 2),
        "process_seconds": round(wall, 2),
        "note": row.note,
    }
    if watch.passed:
        out.update(
            passed=True,
            count=watch.passed["count"],
            train_seconds=watch.passed["train_seconds"],
            result=watch.passed["result"],
        )
    else:
        out.update(
            passed=False,
            count=watch.history[-1]["count"] if watch.history else None,
            train_seconds=round(wall - watch.eval_s, 2),
            result=watch.history[-1]["result"] if watch.history else None,
        )
    return out


def table(rows: list[dict]) -> str:
    lines = [f"{'assignment':<18} {'algo':<9} {'env':<30} {'target':>7} {'reached at':>17} {'train s':>9}  source"]
    total = 0.0
    for r in rows:
        at = f"{r['count']:,} {'ep' if r['count_unit'] == 'episodes' else 'st'}" if r.get("count") is not None else "-"
        mark = "" if r.get("passed") else "  NOT REACHED"
        lines.append(
            f"{r['key']:<18} {r['algo']:<9} {r['env']:<30} {r['target']:>7g} {at:>17} "
            f"{r['train_seconds']:>9.1f}  {r.get('source', 'this run')}{mark}"
        )
        total += r["train_seconds"]
    lines.append(f"{'sum':<18} {'':<9} {'':<30} {'':>7} {'':>17} {total:>9.1f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="train only the cheap rows; take the others from the last full run's JSON"
    )
    ap.add_argument("--only", nargs="+", metavar="KEY", help=f"rows by key: {', '.join(r.key for r in ROWS)}")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"JSON to update (default {RESULTS})")
    args = ap.parse_args(argv)
    unknown = set(args.only or []) - {r.key for r in ROWS}
    if unknown:
        ap.error(f"unknown row(s) {', '.join(sorted(unknown))}")
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {"rows": {}}
    chosen = [r for r in ROWS if (not args.only or r.key in args.only) and (not args.quick or r.quick)]
    out_rows = []
    for row in ROWS:
        if row in chosen:
            print(f"{row.key}: {row.algo} on {row.env}, target {row.target:g}", flush=True)
            result = run_row(row)
            result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            previous["rows"][row.key] = result
            out_rows.append({**result, "source": "this run"})
        elif row.key in previous["rows"]:
            old = previous["rows"][row.key]
            out_rows.append({**old, "source": f"previous run ({old.get('measured_at', '?')[:10]})"})
    previous.update(
        machine=f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
        python=platform.python_version(),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(previous, indent=2) + "\n")
    print()
    print(table(out_rows))
    print(f"\nsaved to {args.out}")
    return 0 if all(r.get("passed") for r in out_rows) else 1


if __name__ == "__main__":
    sys.exit(main())
