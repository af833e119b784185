"""Bonus unit 2 target: tune PPO on LunarLander-v2 and reach result >= 200 in fewer env steps than Unit 1's settings.

    python benchmarks/bench_tune.py                       # baseline, ~20-trial study (1 h limit), verification
    python benchmarks/bench_tune.py --skip-baseline --baseline-steps 800000
    python benchmarks/bench_tune.py --trials 20 --budget 300000 --eval-every 50000 --timeout 3600 --n-jobs 2

1. Baseline: the course's Unit 1 settings (deeprl/hyperparams/ppo.yml, LunarLander-v2: 16 envs, n_steps 1024,
   batch 64, 4 epochs, gamma 0.999, gae_lambda 0.98, ent_coef 0.01) trained with an evaluation (the course
   protocol: 10 episodes, deterministic, result = mean - std) every --eval-every steps; the first step count
   with result >= 200 is the figure.
2. A study (`deeprl tune`'s library, TPE + median pruner, SQLite storage, trial 0 warm-started with the course's
   settings as `deeprl tune --warm-start` does) of --trials trials, each trained for
   --budget steps (less than the baseline needs) and evaluated every --eval-every steps.
3. Verification: the best trial's settings, trained again from scratch the same way as the baseline; its first
   step count with result >= 200 is compared with the baseline's.

Everything runs through the public API (deeprl.tune, deeprl.train.train, deeprl.evaluation.evaluate); the same
seed gives the same numbers. Prints the figures, the settings, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ENV = "LunarLander-v2"
THRESHOLD = 200.0


def steps_to_threshold(
    overrides: dict, *, eval_every: int, max_steps: int, seed: int, folder: Path, label: str
) -> tuple[int | None, list[tuple[int, float]], float]:
    """Train from scratch, evaluating every `eval_every` steps: (first steps with result >= 200, curve, seconds)."""
    from deeprl.agent import load_agent
    from deeprl.evaluation import evaluate
    from deeprl.train import train

    curve, t0, run = [], time.perf_counter(), None
    for target in range(eval_every, max_steps + 1, eval_every):
        if run is None:
            run = train(
                "ppo",
                ENV,
                overrides={**overrides, "n_timesteps": target},
                seed=seed,
                log_folder=folder,
                show_progress=False,
            )
        else:
            run = train("ppo", ENV, resume=True, n_timesteps=target, seed=seed, log_folder=folder, show_progress=False)
        trained = json.loads((run.run_dir / "config.json").read_text())["trained"]["timesteps"]
        r = evaluate(load_agent(run.run_dir), seed=seed)
        curve.append((trained, round(r["result"], 2)))
        print(
            f"  [{label}] {trained:>8} steps: result {r['result']:8.2f} (mean {r['mean_reward']:.2f} +/- "
            f"{r['std_reward']:.2f})  {time.perf_counter() - t0:7.0f} s",
            flush=True,
        )
        if r["result"] >= THRESHOLD:
            return trained, curve, time.perf_counter() - t0
    return None, curve, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--budget", type=int, default=300_000, help="env steps per trial")
    p.add_argument("--eval-every", type=int, default=50_000)
    p.add_argument("--timeout", type=float, default=3600, help="seconds for the study")
    p.add_argument("--baseline-max", type=int, default=1_500_000, help="give the baseline up to this many steps")
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--baseline-only", action="store_true", help="measure the baseline and stop")
    p.add_argument("--baseline-steps", type=int, default=None, help="a baseline figure measured before")
    p.add_argument(
        "--verify-max",
        type=int,
        default=None,
        help="cap on the verification run (default: the baseline's steps, else --baseline-max)",
    )
    p.add_argument("--n-jobs", type=int, default=1)
    p.add_argument(
        "--no-warm-start",
        dest="warm_start",
        action="store_false",
        help="do not make trial 0 the course's settings (deeprl tune --warm-start)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--storage", default=None, help="default: a SQLite file in the work folder")
    p.add_argument("--study-name", default="bench-ppo-LunarLander-v2")
    p.add_argument("--workdir", default=None)
    args = p.parse_args()

    from deeprl.algos import available

    if "ppo" not in available():
        print("PPO (deeprl/algos/ppo.py) is not there yet; nothing to benchmark.", file=sys.stderr)
        return 1
    import deeprl.tune as T
    from deeprl.algos import get_algo
    from deeprl.train import default_hyperparams

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-tune-"))
    work.mkdir(parents=True, exist_ok=True)
    storage = args.storage or f"sqlite:///{work / 'study.db'}"
    course = {
        k: v
        for k, v in default_hyperparams("ppo", get_algo("ppo"), ENV, ENV).items()
        if k
        in (
            "n_envs",
            "n_steps",
            "batch_size",
            "n_epochs",
            "gamma",
            "gae_lambda",
            "ent_coef",
            "learning_rate",
            "clip_range",
        )
    }
    print(f"work folder {work}; storage {storage}")

    baseline = args.baseline_steps
    if not args.skip_baseline:
        print(f"1. Unit 1 settings {course}, evaluated every {args.eval_every} steps:")
        baseline, curve, secs = steps_to_threshold(
            course,
            eval_every=args.eval_every,
            max_steps=args.baseline_max,
            seed=args.seed,
            folder=work / "baseline",
            label="course",
        )
        print(f"   course settings: result >= {THRESHOLD:.0f} at {baseline} steps ({secs:.0f} s); curve {curve}")
        if args.baseline_only:
            return 0

    print(
        f"2. Study: {args.trials} trials x {args.budget} steps, {args.budget // args.eval_every} evaluations each, "
        f"timeout {args.timeout:.0f} s, {args.n_jobs} worker(s)"
    )
    cfg = T.TuneConfig(
        algo="ppo",
        env_id=ENV,
        n_trials=args.trials,
        timeout=args.timeout,
        n_timesteps=args.budget,
        storage=storage,
        study_name=args.study_name,
        seed=args.seed,
        n_evaluations=max(1, args.budget // args.eval_every),
        log_folder=str(work / "trials"),
        warm_start=args.warm_start,
    )
    t0 = time.perf_counter()
    procs = []
    if args.n_jobs > 1:
        import subprocess

        T.open_study(T.resolve(cfg))
        cmd = [
            sys.executable,
            "-m",
            "deeprl",
            "tune",
            "--algo",
            "ppo",
            "--env",
            ENV,
            "--n-trials",
            str(args.trials),
            "--timeout",
            str(args.timeout),
            "--n-timesteps",
            str(args.budget),
            "--storage",
            storage,
            "--study-name",
            args.study_name,
            "--seed",
            str(args.seed),
            "--n-evaluations",
            str(cfg.n_evaluations),
            "--log-folder",
            str(work / "trials"),
            "--_worker",
        ]
        procs = [subprocess.Popen(cmd) for _ in range(args.n_jobs - 1)]
    T.run_worker(cfg, echo=lambda line: print("  " + line, flush=True))
    for proc in procs:
        proc.wait()
    study_s = time.perf_counter() - t0
    study = T.load_study(storage, args.study_name)
    print(T.study_report(study, top=3))
    n_done = len([t for t in study.trials if t.state.is_finished()])
    print(f"   study: {n_done} finished trials in {study_s:.0f} s")
    best_path = T.write_best(study, work / "best.yml")
    best, hp = T.best_hyperparams(study)
    print(f"   best trial {best.number}: result {best.value:.2f} at {args.budget} steps; settings {hp}")
    print(f"   written to {best_path}")

    print("3. Best settings from scratch, evaluated every", args.eval_every, "steps:")
    limit = args.verify_max or baseline or args.baseline_max
    tuned, curve, secs = steps_to_threshold(
        {k: v for k, v in hp.items() if k != "n_timesteps"},
        eval_every=args.eval_every,
        max_steps=limit,
        seed=args.seed,
        folder=work / "verify",
        label="tuned",
    )
    print(f"   tuned settings: result >= {THRESHOLD:.0f} at {tuned or '(not reached)'} steps ({secs:.0f} s); ", end="")
    print(f"curve {curve}")

    print("\n== Summary ==")
    print(f"course Unit 1 settings : {baseline if baseline else 'not reached'} steps to result >= {THRESHOLD:.0f}")
    print(f"tuned ({n_done} trials, {study_s / 60:.0f} min): {tuned if tuned else 'not reached'} steps")
    if baseline and tuned:
        print(f"ratio: {baseline / tuned:.2f}x fewer env steps; target {'MET' if tuned < baseline else 'NOT met'}")
    print(f"tuned settings: {hp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
