"""Subcommands of `deeprl`, one module each (see deeprl/cli.py)."""

import json
import sys
from typing import Any


def print_json(obj: Any) -> None:
    """`--json`: one JSON object on stdout and nothing else there."""
    sys.stdout.write(json.dumps(obj, default=str) + "\n")


def format_result(r: dict) -> str:
    det = "deterministic" if r["is_deterministic"] else "sampled"
    return (
        f"{r.get('env_tag', r['env_id'])}: mean_reward={r['mean_reward']:.2f} +/- {r['std_reward']:.2f}  "
        f"result={r['result']:.2f}  ({r['n_eval_episodes']} episodes, {det} actions)"
    )


def seed(text: str) -> int:
    """argparse type for --seed: a whole number numpy accepts (0 <= seed < 2**32), checked before any work."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {2**32 - 1}, not '{text}'")
    return value
