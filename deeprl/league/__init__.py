"""The Unit 7 league: every pushed SoccerTwos model plays the others, each match is stored, ratings follow.

As the course's AI vs AI Space ran it (huggingface/blog aivsai.md; the Space's background_task.py): gather every
model tagged ML-Agents-SoccerTwos (a new one starts at 1200), queue them, pop the first, pop a random opponent
among the n closest ratings within a maximum gap, play, store the result, apply the Elo update (K = 20), until the
queue is empty; then again on a schedule.

- matchmaking.py: the pairing rule, pure (tests drive it with scripted ratings);
- game.py: the child process that loads two models and plays one match (a best-of-N set of games, fixed seed,
  both side assignments) and prints one JSON line; it runs under the leaderboard's limits (sandbox.run_child);
- ratings.py: ratings replayed from the stored matches (the source of truth) and their cache;
- runner.py: a round (gather, queue, play, store, rate) and the schedule;
- export.py: the league's CSV files (soccer_history.csv, soccer_elo.csv) and a Parquet file of the matches.
"""

from deeprl.league.matchmaking import DEFAULT_MAX_GAP, DEFAULT_N_CLOSEST, pair_up, pick_opponent
from deeprl.league.ratings import DEFAULT_K, history, recompute, replay, table
from deeprl.league.runner import ENV_TAG, LeagueReport, run_round

__all__ = [
    "DEFAULT_K",
    "DEFAULT_MAX_GAP",
    "DEFAULT_N_CLOSEST",
    "ENV_TAG",
    "LeagueReport",
    "history",
    "pair_up",
    "pick_opponent",
    "recompute",
    "replay",
    "run_round",
    "table",
]
