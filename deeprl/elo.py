"""Elo ratings (Unit 7), as the course teaches them; shared by self-play training, `deeprl match` and the league.

    E_A = 1 / (1 + 10 ** ((R_B - R_A) / 400))          expected score of A against B
    R_A' = R_A + K * (S_A - E_A)                        S_A: 1 win, 0.5 draw, 0 loss

The points one player gains the other loses (E_A + E_B = 1), so the sum of ratings is conserved. Teams play as
one player: a team's rating is its players' mean, as the course says.
"""

from __future__ import annotations

from collections.abc import Iterable

INITIAL_ELO = 1200.0  # ML-Agents' initial_elo, the course's value
K_FACTOR = 16.0  # the course's example (K=16 for masters, 32 for weaker players)

RESULTS = {"win": 1.0, "draw": 0.5, "loss": 0.0}


def expected_score(rating_a: float, rating_b: float) -> float:
    """Probability-like expected score of A against B (0..1)."""
    return 1.0 / (1.0 + 10.0 ** ((rating_b - rating_a) / 400.0))


def score(result: str | float) -> float:
    """'win' / 'draw' / 'loss' (or a number in [0, 1]) -> S."""
    if isinstance(result, str):
        if result not in RESULTS:
            raise ValueError(f"result must be one of {', '.join(RESULTS)}, not {result!r}")
        return RESULTS[result]
    s = float(result)
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"a score must lie between 0 and 1, not {s}")
    return s


def rating_change(rating_a: float, rating_b: float, result_a: str | float, k: float = K_FACTOR) -> float:
    """How many points A gains (B loses the same) after one game with `result_a` from A's side."""
    return k * (score(result_a) - expected_score(rating_a, rating_b))


def update(rating_a: float, rating_b: float, result_a: str | float, k: float = K_FACTOR) -> tuple[float, float]:
    """New (R_A, R_B) after one game."""
    d = rating_change(rating_a, rating_b, result_a, k)
    return rating_a + d, rating_b - d


def update_many(
    rating_a: float, rating_b: float, results_a: Iterable[str | float], k: float = K_FACTOR
) -> tuple[float, float]:
    """Apply games one after another (Elo is sequential: each game moves the ratings the next one sees)."""
    for r in results_a:
        rating_a, rating_b = update(rating_a, rating_b, r, k)
    return rating_a, rating_b


def team_rating(ratings: Iterable[float]) -> float:
    values = list(ratings)
    if not values:
        raise ValueError("a team needs at least one rating")
    return sum(values) / len(values)
