"""Subcommands of `deeprl`, one module each (see deeprl/cli.py)."""

import json
import sys


def print_json(obj) -> None:
    """`--json`: one JSON object on stdout and nothing else there."""
    sys.stdout.write(json.dumps(obj, default=str) + "\n")


def format_result(r: dict) -> str:
    det = "deterministic" if r["is_deterministic"] else "sampled"
    return (f"{r.get('env_tag', r['env_id'])}: mean_reward={r['mean_reward']:.2f} +/- {r['std_reward']:.2f}  "
            f"result={r['result']:.2f}  ({r['n_eval_episodes']} episodes, {det} actions)")
