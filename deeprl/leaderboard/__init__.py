"""The leaderboard: an indexer that re-evaluates every pushed revision, and the ranking built on its figures.

- indexer.py: the index run (`index`): list a hub, evaluate each new revision, store its figures and its card's
  claim, flag claims far from the verified figures (`claim_is_flagged`);
- sandbox.py: one revision evaluated in a limited child process (`evaluate_folder`), and its file list
  (`list_files`);
- ranking.py: the queries over the stored figures (`ranking`, `unranked`, `env_summaries`, `model_detail`,
  `leaderboard`) and the text table (`format_table`).

The names below are the public ones; import them from here.
"""

from deeprl.leaderboard.indexer import DEFAULT_MAX_REVISIONS, IndexReport, claim_is_flagged, index
from deeprl.leaderboard.ranking import (
    JSON_KEYS,
    SORT_KEYS,
    env_summaries,
    format_table,
    json_row,
    leaderboard,
    model_detail,
    ranking,
    unranked,
)
from deeprl.leaderboard.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, MAX_FILES, evaluate_folder, list_files

__all__ = [
    "DEFAULT_MAX_REVISIONS",
    "DEFAULT_MEMORY_MB",
    "DEFAULT_TIMEOUT_S",
    "IndexReport",
    "JSON_KEYS",
    "MAX_FILES",
    "SORT_KEYS",
    "claim_is_flagged",
    "env_summaries",
    "evaluate_folder",
    "format_table",
    "index",
    "json_row",
    "leaderboard",
    "list_files",
    "model_detail",
    "ranking",
    "unranked",
]
