"""The league's data as files: the course league's two CSVs and a Parquet file of every stored match.

- soccer_history.csv: model1, model2, result, timestamp (the Space's bot-fight-data history; rated matches);
- soccer_elo.csv: rank, author, model, elo, games_played (the Space's leaderboard file);
- matches.parquet: every column of the matches table, forfeits included; `datasets.load_dataset("parquet",
  data_files=...)` and pyarrow read it.
"""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import select

from deeprl import db
from deeprl.db import Match
from deeprl.league import ratings as rt

HISTORY_FIELDS = ["model1", "model2", "result", "timestamp"]
ELO_FIELDS = ["rank", "author", "model", "elo", "games_played"]
MATCH_COLUMNS = [
    "id",
    "env",
    "model1",
    "model2",
    "revision1",
    "revision2",
    "result",
    "won",
    "drawn",
    "lost",
    "seed",
    "max_steps",
    "k",
    "rated",
    "forfeit",
    "error",
    "elo1_before",
    "elo2_before",
    "elo1_after",
    "elo2_after",
    "played_at",
]


def export(folder: Path, hub: str = "local", url: str | None = None) -> dict[str, Path]:
    """Write the three files into `folder`; returns their paths by name."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with db.session(url) as s:
        matches = s.scalars(select(Match).where(Match.hub == hub).order_by(Match.id)).all()
    paths = {
        "history": folder / "soccer_history.csv",
        "elo": folder / "soccer_elo.csv",
        "parquet": folder / "matches.parquet",
    }
    with open(paths["history"], "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HISTORY_FIELDS)
        for m in matches:
            if m.rated:
                w.writerow([m.model1, m.model2, m.result, m.played_at.isoformat()])
    with open(paths["elo"], "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(ELO_FIELDS)
        for r in rt.table(hub, url):
            if r["rank"] is not None:
                w.writerow([r["rank"], r["author"], r["model"], round(r["elo"], 2), r["games_played"]])
    cols = {c: [getattr(m, c) for m in matches] for c in MATCH_COLUMNS}
    types = {
        "id": pa.int64(),
        "result": pa.float64(),
        "won": pa.int64(),
        "drawn": pa.int64(),
        "lost": pa.int64(),
        "seed": pa.int64(),
        "max_steps": pa.int64(),
        "k": pa.float64(),
        "rated": pa.bool_(),
        "elo1_before": pa.float64(),
        "elo2_before": pa.float64(),
        "elo1_after": pa.float64(),
        "elo2_after": pa.float64(),
        "played_at": pa.timestamp("us", tz="UTC"),
    }
    table = pa.table({c: pa.array(v, type=types.get(c, pa.string())) for c, v in cols.items()})
    pq.write_table(table, paths["parquet"])
    return paths
