"""ML-Agents' reward signals for PPO (issue 17 item 3): the env's reward (extrinsic) and intrinsic ones."""

from __future__ import annotations

from typing import Any

from deeprl.errors import UserError

KINDS = ("extrinsic", "rnd", "curiosity")


def parse_reward_signals(value: Any) -> dict:
    """{kind: settings} checked; a signal deeprl does not train yet is one sentence."""
    if not isinstance(value, dict):
        raise UserError(f"reward_signals must be a mapping such as {{rnd: {{strength: 0.01}}}}, not {value!r}.")
    for kind in value:
        if kind not in KINDS:
            raise UserError(f"Unknown reward signal '{kind}'; PPO takes {', '.join(KINDS)}.")
        if kind != "extrinsic":
            raise UserError(f"The {kind} reward signal is not implemented yet; train without it.")
    return dict(value)
