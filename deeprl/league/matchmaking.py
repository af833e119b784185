"""Who plays whom in a league round, as the course's league paired models.

The queue holds every model once. The first model is popped, and its opponent is popped at random among the
`n_closest` models still queued whose ratings are nearest to its own, leaving out any further than `max_gap`
points (the Space's `max_diff = 500`: a mismatch that far teaches the ratings almost nothing). A model with no
opponent inside the gap sits the round out. The round ends when at most one model is left.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

DEFAULT_N_CLOSEST = 3  # the blog's "n closest ratings"; n is not published, 3 keeps pairs close yet varied
DEFAULT_MAX_GAP = 500.0  # background_task.py: self.max_diff = 500


def pick_opponent(
    model: str,
    queue: Sequence[str],
    ratings: Mapping[str, float],
    rng: random.Random,
    *,
    n_closest: int = DEFAULT_N_CLOSEST,
    max_gap: float = DEFAULT_MAX_GAP,
) -> str | None:
    """A random one of the `n_closest` queued models by rating distance to `model`, within `max_gap`; None if
    no queued model is close enough. Ties in distance keep queue order, so the choice is reproducible."""
    mine = ratings[model]
    near = sorted((abs(ratings[m] - mine), i, m) for i, m in enumerate(queue) if m != model)
    candidates = [m for gap, _, m in near if gap <= max_gap][:n_closest]
    return rng.choice(candidates) if candidates else None


def pair_up(
    models: Sequence[str],
    ratings: Mapping[str, float],
    rng: random.Random,
    *,
    n_closest: int = DEFAULT_N_CLOSEST,
    max_gap: float = DEFAULT_MAX_GAP,
    on_pair: Callable[[str, str], object] | None = None,
) -> tuple[list[tuple[str, str]], list[str]]:
    """One round's pairs and the models that sat out. `on_pair(a, b)` is called as each pair is made and may
    change `ratings` (the league plays and rates each match before the next opponent is picked)."""
    if n_closest < 1:
        raise ValueError("n_closest must be at least 1")
    queue = list(models)
    pairs, idle = [], []
    while len(queue) > 1:
        model = queue.pop(0)
        opponent = pick_opponent(model, queue, ratings, rng, n_closest=n_closest, max_gap=max_gap)
        if opponent is None:
            idle.append(model)
            continue
        queue.remove(opponent)
        pairs.append((model, opponent))
        if on_pair is not None:
            on_pair(model, opponent)
    return pairs, idle + queue
