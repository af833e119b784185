"""A league round: gather the SoccerTwos models, queue them, pair, play each match in a limited child, store it
and fold it into the ratings; and the schedule that repeats rounds (`deeprl league run`, `deeprl serve
--league-every`).

A round's matches are independent jobs (deeprl.dispatch): they run side by side in a local pool sized to the
cores, or as Ray tasks on a cluster (`Settings.dispatch`, `deeprl league run --ray ADDRESS`), each in the same
limited child. The round is paired first and then played: the same pairs, results and ratings as the course's
pop, play, rate, pop again, because each model plays at most once a round and an opponent is picked from the
ratings of models that have not played yet this round, which no match of the round has moved (the Elo update
touches only the two models just taken out of the queue). The results are stored and rated in queue order.

Round after round on one machine take turns (a file lock under DEEPRL_HOME), so a `deeprl league run --once`
typed while the web server's league is playing waits for it.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from deeprl import db, elo
from deeprl.db import Match
from deeprl.dispatch import DispatchOptions, dispatching
from deeprl.leaderboard.sandbox import DEFAULT_MEMORY_MB, Model, death, json_objects, pack, run_child, stage, unstage
from deeprl.league import ratings as rt
from deeprl.league.matchmaking import DEFAULT_MAX_GAP, DEFAULT_N_CLOSEST, pair_up

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

ENV_TAG = "ML-Agents-SoccerTwos"  # the course: a league model carries this tag
DEFAULT_GAMES = 6  # a best-of-6 set: each model plays blue three times and purple three times
DEFAULT_SEED = 0  # one fixed seed for every match: the same two revisions always give the same result
DEFAULT_MATCH_TIMEOUT_S = 300.0
MAX_STEPS = 500  # soccer.MAX_STEPS: decisions before a game is a draw


@dataclass
class LeagueReport:
    hub: str
    models: int = 0
    played: list[dict] = field(default_factory=list)
    idle: list[str] = field(default_factory=list)  # no opponent within the rating gap this round
    benched: dict = field(default_factory=dict)  # {model: why} forfeited at this revision already: not queued
    seconds: float = 0.0
    ran_on: str = ""  # where the matches ran (deeprl.dispatch): "local pool (2)", "Ray (4 CPUs)", ...

    def as_dict(self) -> dict:
        return {
            "hub": self.hub,
            "models": self.models,
            "matches": self.played,
            "idle": self.idle,
            "benched": self.benched,
            "seconds": round(self.seconds, 3),
            "ran_on": self.ran_on,
        }


@dataclass
class Settings:
    n_closest: int = DEFAULT_N_CLOSEST
    max_gap: float = DEFAULT_MAX_GAP
    k: float = rt.DEFAULT_K
    games: int = DEFAULT_GAMES
    max_steps: int = MAX_STEPS
    seed: int = DEFAULT_SEED
    timeout_s: float = DEFAULT_MATCH_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    replays: bool = True
    dispatch: DispatchOptions | None = None  # where the matches run (None: a local pool sized to the cores)


def replay_dir() -> Path:
    from deeprl.paths import home

    path = home() / "league" / "replays"
    path.mkdir(parents=True, exist_ok=True)
    return path


def play_in_child(folder1: Model, folder2: Model, settings: Settings, replay_to: Path | None = None) -> dict:
    """One match between two models (folders, or their packed files) in a limited child: {'match': ...} or
    {'forfeit': [...], 'error'} or {'error': why} when the child died without a verdict (nobody to blame: no
    contest). The match's 'replay' is `replay_to` when the first game's video was written there, else None."""
    with tempfile.TemporaryDirectory(prefix="deeprl-league-") as tmp:
        staged = [Path(tmp) / "model1", Path(tmp) / "model2"]
        try:
            for src, dest in zip((folder1, folder2), staged):
                stage(src, dest)
        except OSError as exc:
            for folder in staged:
                if folder.exists():
                    unstage(folder)
            return {"error": f"could not copy the models for the match ({exc.strerror})"}
        work = Path(tmp) / "work"
        work.mkdir()
        args = [
            "-m",
            "deeprl.league.game",
            str(staged[0]),
            str(staged[1]),
            "--games",
            str(settings.games),
            "--seed",
            str(settings.seed),
            "--max-steps",
            str(settings.max_steps),
        ]
        if replay_to is not None:
            args += ["--replay", str(work / "replay.mp4")]
        try:
            child = run_child(args, work, timeout_s=settings.timeout_s, memory_mb=settings.memory_mb)
        finally:
            for folder in staged:
                if folder.exists():
                    unstage(folder)
        if not child.started:
            return {"error": f"could not start the match: {child.error_text}"}
        if child.timed_out:
            return {"error": f"the match took longer than {settings.timeout_s:g} s and was stopped"}
        found = next((o for o in reversed(json_objects(child.out)) if "match" in o or "forfeit" in o), None)
        if found is None or child.returncode != 0:
            return {"error": death(child.returncode, child.err, settings.memory_mb, "the match")}
        match = found.get("match")
        if isinstance(match, dict):
            made = replay_to is not None and match.get("replay") and (work / "replay.mp4").is_file()
            if made and replay_to is not None:
                shutil.copyfile(work / "replay.mp4", replay_to)
            match["replay"] = str(replay_to) if made else None
        return found


@dataclass(frozen=True)
class MatchJob:
    """One match as a job (deeprl.dispatch): both models' packed files (sandbox.pack), or for a model that could
    not be fetched, (side, why) in `unfetched`; the match settings; whether to bring back the replay."""

    files1: dict[str, bytes] | None
    files2: dict[str, bytes] | None
    settings: Settings
    replay: bool = False
    unfetched: tuple[tuple[int, str], ...] = ()


def play_match(job: MatchJob) -> dict:
    """play_in_child on a job's files, wherever the job runs: its outcome, 'seconds', and the first game's video
    as bytes under 'replay_mp4' when asked for (the match's 'replay' is then 'replay.mp4')."""
    t0 = time.perf_counter()
    if job.unfetched or job.files1 is None or job.files2 is None:
        unfetched = job.unfetched or ((1, "model1: no files"),)
        outcome: dict = {"forfeit": [side for side, _ in unfetched], "error": "; ".join(w for _, w in unfetched)}
    else:
        with tempfile.TemporaryDirectory(prefix="deeprl-match-") as tmp:
            video = Path(tmp) / "replay.mp4" if job.replay else None
            outcome = play_in_child(job.files1, job.files2, job.settings, video)
            match = outcome.get("match")
            if isinstance(match, dict) and video is not None and match.get("replay"):
                outcome["replay_mp4"] = video.read_bytes()
                match["replay"] = video.name
    outcome["seconds"] = round(time.perf_counter() - t0, 3)
    return outcome


def match_failed(job: MatchJob, why: str) -> dict:
    """The row of a match job that did not return (deeprl.dispatch's `failed`): no contest, nobody to blame."""
    return {"error": f"the match could not be played ({why})"}


def _benched(s: Session, hub: str, model: str, revision: str) -> str | None:
    """Why `model` at `revision` sits out: its last match at this revision was its own forfeit."""
    last = s.scalar(
        select(Match)
        .where(Match.hub == hub, (Match.model1 == model) | (Match.model2 == model))
        .order_by(Match.id.desc())
        .limit(1)
    )
    if last is None or last.forfeit != model:
        return None
    if (last.revision1 if last.model1 == model else last.revision2) != revision:
        return None  # pushed again since: it gets another chance
    return last.error or "forfeited"


def store_match(
    s: Session,
    hub: str,
    m1: str,
    m2: str,
    rev1: str | None,
    rev2: str | None,
    outcome: dict,
    settings: Settings,
    seconds: float,
) -> Match:
    """The match row, with the Elo update applied to the cached ratings (only rated matches move them)."""
    have = rt.current(s, hub)
    r1, r2 = have.get(m1, elo.INITIAL_ELO), have.get(m2, elo.INITIAL_ELO)
    row = Match(
        hub=hub,
        env=ENV_TAG,
        model1=m1,
        model2=m2,
        revision1=rev1,
        revision2=rev2,
        seed=settings.seed,
        max_steps=settings.max_steps,
        k=settings.k,
        elo1_before=r1,
        elo2_before=r2,
        seconds=round(seconds, 3),
    )
    if "match" in outcome:
        g = outcome["match"]
        row.won, row.drawn, row.lost = int(g["won"]), int(g["drawn"]), int(g["lost"])
        row.result, row.rated = float(g["result"]), True
        row.elo1_after, row.elo2_after = elo.update(r1, r2, row.result, k=settings.k)
    else:
        blamed = outcome.get("forfeit") or []
        row.rated, row.error = False, str(outcome.get("error") or "the match could not be played")[:2000]
        row.won = row.drawn = row.lost = 0
        # a forfeit is a loss on the record but moves no rating; when both failed the first is named (the error
        # names both) and the second forfeits its next match; a child that died with nobody to blame is no contest
        if blamed:
            row.forfeit, row.result = (m1, 0.0) if 1 in blamed else (m2, 1.0)
        else:
            row.result = 0.5
        row.elo1_after, row.elo2_after = r1, r2
    s.add(row)
    s.flush()
    if row.rated:
        rt.store(s, m1, row.elo1_after, row.id, hub)
        rt.store(s, m2, row.elo2_after, row.id, hub)
    return row


def run_round(
    hub: str = "local",
    url: str | None = None,
    settings: Settings | None = None,
    rng: random.Random | None = None,
    log: Callable[[str], None] | None = None,
    on_pairs: Callable[[list[tuple[str, str]]], None] | None = None,
) -> LeagueReport:
    """One league round (the file lock makes rounds on this machine take turns). `on_pairs` hears the round's
    pairs not yet stored: all of them once paired, fewer after each stored match, none at the end."""
    from filelock import FileLock

    from deeprl.paths import home

    with FileLock(str(home() / "league.lock")):
        try:
            return _round(hub, url, settings or Settings(), rng or random.Random(), log, on_pairs or (lambda p: None))
        finally:
            if on_pairs:
                on_pairs([])


def _round(
    hub: str,
    url: str | None,
    settings: Settings,
    rng: random.Random,
    log: Callable[[str], None] | None,
    on_pairs: Callable[[list[tuple[str, str]]], None],
) -> LeagueReport:
    from deeprl.hub import get_hub

    started = time.perf_counter()
    report = LeagueReport(hub=hub)
    hub_obj = get_hub(hub)
    models = {info.repo_id: info.revision for info in hub_obj.list_models(tag=ENV_TAG)}
    report.models = len(models)
    with db.session(url) as s:
        for model, rev in models.items():
            why = _benched(s, hub, model, rev)
            if why:
                report.benched[model] = why
        ratings = rt.current(s, hub)
    queue = [m for m in models if m not in report.benched]
    rng.shuffle(queue)
    for m in queue:
        ratings.setdefault(m, elo.INITIAL_ELO)  # the course: a new model starts at 1200

    pairs, report.idle = pair_up(queue, ratings, rng, n_closest=settings.n_closest, max_gap=settings.max_gap)

    def job(m1: str, m2: str) -> MatchJob:
        """Fetch both models here (the hub is this machine's) and pack the files the match reads."""
        files: list[dict[str, bytes] | None] = []
        unfetched = []
        for side, m in ((1, m1), (2, m2)):
            try:
                files.append(pack(Path(hub_obj.download(m, revision=models[m]))))
            except Exception as exc:  # gone from the hub, unreachable or unreadable: that model forfeits
                files.append(None)
                unfetched.append((side, f"model{side}: could not fetch {m} ({str(exc)[:200]})"))
        return MatchJob(files[0], files[1], settings, replay=settings.replays, unfetched=tuple(unfetched))

    on_pairs(list(pairs))
    jobs = (job(m1, m2) for m1, m2 in pairs)
    with dispatching(settings.dispatch if pairs else DispatchOptions(workers=1)) as dispatcher:
        report.ran_on = dispatcher.name if pairs else ""
        for i, ((m1, m2), outcome) in enumerate(zip(pairs, dispatcher.map(play_match, jobs, match_failed))):
            video, seconds = outcome.pop("replay_mp4", None), float(outcome.pop("seconds", 0.0))
            with db.session(url) as s:
                row = store_match(s, hub, m1, m2, models[m1], models[m2], outcome, settings, seconds)
                if isinstance(video, bytes):
                    final = replay_dir() / f"{row.id}.mp4"
                    final.write_bytes(video)
                    row.replay = final.name
                entry: dict[str, Any] = {
                    "id": row.id,
                    "model1": m1,
                    "model2": m2,
                    "result": row.result,
                    "won": row.won,
                    "drawn": row.drawn,
                    "lost": row.lost,
                    "rated": row.rated,
                    "forfeit": row.forfeit,
                    "error": row.error,
                    "elo1": row.elo1_after,
                    "elo2": row.elo2_after,
                }
            report.played.append(entry)
            on_pairs(pairs[i + 1 :])  # the matches still running or queued (the pool returns them in order)
            if log:
                log(describe(entry))
    report.seconds = time.perf_counter() - started
    return report


def describe(m: dict) -> str:
    """One line for a played match."""
    if m["forfeit"] or not m["rated"]:
        return f"{m['model1']} vs {m['model2']}: not rated ({m['error']})"
    return (
        f"{m['model1']} vs {m['model2']}: {m['won']}-{m['drawn']}-{m['lost']} -> {m['result']:g} "
        f"(Elo {m['elo1']:.1f} / {m['elo2']:.1f})"
    )


class Scheduler:
    """League rounds in a background thread, one every `every_s` seconds (the web server's league)."""

    def __init__(self, every_s: float, hub: str = "local", url: str | None = None, settings: Settings | None = None):
        self.every_s, self.hub, self.url, self.settings = every_s, hub, url, settings or Settings()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.last_error: str | None = None
        self.last_finished: float | None = None
        self.playing: list[tuple[str, str]] = []  # this round's pairs not yet stored (the league page's "now playing")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="deeprl-league", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _now_playing(self, pairs: list[tuple[str, str]]) -> None:
        self.playing = pairs

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                run_round(self.hub, self.url, self.settings, on_pairs=self._now_playing)
                self.last_error = None
            except Exception as exc:  # a failed round is reported on the page and tried again next time
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            self.rounds += 1
            self.last_finished = time.time()
            self._stop.wait(self.every_s)
