"""League ratings, replayed from the stored matches (the source of truth) and cached in `league_ratings`.

Each rated match is one Elo update with its own stored K and result (model1's score S = 1 / 0.5 / 0), applied in
the order the matches were played (by id): the same arithmetic in the same order as the live league, so a
rebuild gives the same numbers to the last bit. Forfeits are stored but move no rating.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from deeprl import db, elo
from deeprl.db import LeagueRating, Match

DEFAULT_K = 20.0  # background_task.py at 7232e3f: self.k = 20 (the course's worked example uses 16)


def walk(
    matches: Iterable[Match],
) -> Iterator[tuple[Match, tuple[float, float], tuple[float, float]]]:
    """(match, (elo1, elo2) before, (elo1, elo2) after) for each match in play order; a forfeit changes nothing."""
    ratings: dict[str, float] = {}
    for m in matches:
        before = (ratings.get(m.model1, elo.INITIAL_ELO), ratings.get(m.model2, elo.INITIAL_ELO))
        after = elo.update(*before, m.result, k=m.k) if m.rated else before
        ratings[m.model1], ratings[m.model2] = after
        yield m, before, after


def replay(matches: Iterable[Match]) -> dict[str, dict]:
    """{model: {'elo', 'games', 'wins', 'draws', 'losses', 'last_match'}} from matches in play order."""
    out: dict[str, dict] = defaultdict(
        lambda: {"elo": elo.INITIAL_ELO, "games": 0, "wins": 0, "draws": 0, "losses": 0, "last_match": None}
    )
    for m, _, after in walk(matches):
        if not m.rated:
            continue
        for model, rating, s in ((m.model1, after[0], m.result), (m.model2, after[1], 1.0 - m.result)):
            row = out[model]
            row["elo"], row["games"], row["last_match"] = rating, row["games"] + 1, m.id
            row["wins" if s == 1.0 else "losses" if s == 0.0 else "draws"] += 1
    return dict(out)


def _matches(s: Session, hub: str) -> Sequence[Match]:
    return s.scalars(select(Match).where(Match.hub == hub).order_by(Match.id)).all()


def current(s: Session, hub: str = "local") -> dict[str, float]:
    """The cached ratings {model: elo}."""
    return {r.model: r.elo for r in s.scalars(select(LeagueRating).where(LeagueRating.hub == hub))}


def store(s: Session, model: str, rating: float, match_id: int, hub: str = "local") -> None:
    """Fold one rated match into the cache for `model`."""
    row = s.scalar(select(LeagueRating).where(LeagueRating.hub == hub, LeagueRating.model == model))
    if row is None:
        row = LeagueRating(hub=hub, model=model, elo=elo.INITIAL_ELO, games=0)
        s.add(row)
    row.elo, row.games, row.last_match = rating, (row.games or 0) + 1, match_id


def recompute(hub: str = "local", url: str | None = None) -> dict:
    """Drop the cached ratings, replay every match, store the result; report how far the old cache was off."""
    with db.session(url) as s:
        before = {r.model: (r.elo, r.games) for r in s.scalars(select(LeagueRating).where(LeagueRating.hub == hub))}
        s.execute(delete(LeagueRating).where(LeagueRating.hub == hub))
        rebuilt = replay(_matches(s, hub))
        for model, r in rebuilt.items():
            s.add(LeagueRating(hub=hub, model=model, elo=r["elo"], games=r["games"], last_match=r["last_match"]))
    models = set(before) | set(rebuilt)
    diff = max(
        (abs(before.get(m, (elo.INITIAL_ELO, 0))[0] - rebuilt.get(m, {"elo": elo.INITIAL_ELO})["elo"]) for m in models),
        default=0.0,
    )
    games_differ = sorted(m for m in models if before.get(m, (0, 0))[1] != rebuilt.get(m, {"games": 0})["games"])
    return {
        "models": len(rebuilt),
        "matches": sum(r["games"] for r in rebuilt.values()) // 2,
        "max_difference": diff,
        "games_differ": games_differ,
        "same": diff == 0.0 and not games_differ,
    }


def table(hub: str = "local", url: str | None = None, *, trend: int = 20) -> list[dict]:
    """The league table, best first: rank, author, model, elo, games_played, w/d/l and the last `trend` ratings.
    Read from the matches themselves, so it is right even while the cache is being rebuilt."""
    with db.session(url) as s:
        matches = _matches(s, hub)
    rows = replay(matches)
    series = _series(matches)
    forfeits = _forfeits(matches)
    out = []
    for model, r in rows.items():
        out.append(
            {
                "model": model,
                "author": model.split("/", 1)[0],
                "elo": r["elo"],
                "games_played": r["games"],
                "wins": r["wins"],
                "draws": r["draws"],
                "losses": r["losses"],
                "trend": series.get(model, [])[-trend:],
                "forfeit": forfeits.get(model),
            }
        )
    for model, why in forfeits.items():  # forfeited every match so far: listed, unrated
        if model not in rows:
            out.append(
                {
                    "model": model,
                    "author": model.split("/", 1)[0],
                    "elo": None,
                    "games_played": 0,
                    "wins": 0,
                    "draws": 0,
                    "losses": 0,
                    "trend": [],
                    "forfeit": why,
                }
            )
    out.sort(key=lambda r: (r["elo"] is None, -(r["elo"] or 0), r["model"]))
    for i, r in enumerate(out, 1):
        r["rank"] = i if r["elo"] is not None else None
    return out


def _series(matches: Iterable[Match]) -> dict[str, list[float]]:
    """Each model's rating after each of its rated matches, starting from 1200."""
    series: dict[str, list[float]] = {}
    for m, _, after in walk(matches):
        if m.rated:
            for model, rating in zip((m.model1, m.model2), after):
                series.setdefault(model, [elo.INITIAL_ELO]).append(rating)
    return series


def _forfeits(matches: Iterable[Match]) -> dict[str, str]:
    """{model: reason} for models whose latest match was a forfeit of theirs."""
    latest: dict[str, Match] = {}
    for m in matches:
        latest[m.model1] = latest[m.model2] = m
    return {model: m.error or "forfeited" for model, m in latest.items() if m.forfeit == model}


def history(model: str, hub: str = "local", url: str | None = None) -> dict:
    """One model's matches, newest first, with its rating before and after each; 'elo' None when it never
    played."""
    with db.session(url) as s:
        matches = _matches(s, hub)
    rows = []
    for m, before, after in walk(matches):
        if model not in (m.model1, m.model2):
            continue
        i = 0 if m.model1 == model else 1
        rows.append(
            {
                "match": m.id,
                "opponent": (m.model2, m.model1)[i],
                "revision": (m.revision1, m.revision2)[i],
                "result": (m.result, 1.0 - m.result)[i],
                "won": (m.won, m.lost)[i],
                "drawn": m.drawn,
                "lost": (m.lost, m.won)[i],
                "elo_before": before[i],
                "elo_after": after[i],
                "rated": m.rated,
                "forfeit": m.forfeit,
                "error": m.error,
                "played_at": m.played_at.isoformat(),
                "replay": bool(m.replay),
            }
        )
    return {"model": model, "elo": rows[-1]["elo_after"] if rows else None, "matches": rows[::-1]}
