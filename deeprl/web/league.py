"""The league's pages: the table with each model's rating trend, a match with its replay, a model's rating
history, and a live game page (steps streamed over a WebSocket): a person plays a pushed model with the keyboard,
or watches two pushed models play each other with the league's seed.

Charts are inline SVG drawn here (the page CSP allows no inline script; the play page's script is a static file).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import numpy as np
from fastapi import APIRouter, HTTPException, Path as PathParam, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, Response  # Response: read by FastAPI from the routes' annotations
from sqlalchemy import select

from deeprl import db
from deeprl.web.schemas import NOT_FOUND

if TYPE_CHECKING:
    from deeprl.envs.soccer import SoccerCore
    from deeprl.league.play_child import PlayChild
    from deeprl.league.runner import Scheduler

PART = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9])?"
PART_PATTERN = rf"^{PART}$"
MODEL_PATTERN = rf"^{PART}/{PART}$"  # a repo id, NS/NAME
REPLAY_NAME = re.compile(r"^[0-9]{1,12}\.mp4$")
PLAY_SECONDS = 120  # a browser game (played or watched) lasts at most this long
MAX_CHILDREN = 4  # models playing browser games at once, each in a child on the server's CPU (a watch takes 2)
KEYS = {"up": (0, 1), "down": (0, 2), "left": (2, 1), "right": (2, 2), "strafe_left": (1, 2), "strafe_right": (1, 1)}


def spark(values: list[float], width: int = 120, height: int = 24, pad: float = 2.0) -> str:
    """SVG polyline points for `values` scaled into width x height (higher is up)."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    step = (width - 2 * pad) / max(1, len(values) - 1)
    return " ".join(
        f"{pad + i * step:.1f},{height - pad - (v - lo) / span * (height - 2 * pad):.1f}" for i, v in enumerate(values)
    )


def plot(values: list[float], width: int = 640, height: int = 240) -> dict:
    """A rating-history chart: the polyline plus the y-axis labels and the 1200 line, all in SVG coordinates."""
    lo, hi = min(values + [1200.0]), max(values + [1200.0])
    margin = max(10.0, (hi - lo) * 0.1)
    lo, hi = lo - margin, hi + margin
    left, top, inner_w, inner_h = 50, 10, width - 60, height - 30

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * inner_h

    step = inner_w / max(1, len(values) - 1)
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": left + inner_w,
        "bottom": top + inner_h,
        "points": " ".join(f"{left + i * step:.1f},{y(v):.1f}" for i, v in enumerate(values)),
        "ticks": [{"y": round(y(v), 1), "label": f"{v:.0f}"} for v in np.linspace(lo, hi, 5)],
        "base": round(y(1200.0), 1),
    }


class Players:
    """How many models are playing browser games, each in its child (a bound, so a crowd cannot take every
    core): a game against a person holds one, a watched game two."""

    def __init__(self, limit: int):
        self.limit, self.count = limit, 0
        self._lock = threading.Lock()

    def enter(self, n: int = 1) -> bool:
        with self._lock:
            if self.count + n > self.limit:
                return False
            self.count += n
            return True

    def leave(self, n: int = 1) -> None:
        with self._lock:
            self.count -= n


def league_router(
    *, hub: str, url: str | None, page: Callable[..., Response], scheduler: Scheduler | None = None
) -> APIRouter:
    """The league's routes; `page` renders a template the way the rest of the site does."""
    from deeprl.league import history, table
    from deeprl.league.runner import DEFAULT_SEED

    router = APIRouter()
    players = Players(MAX_CHILDREN)
    # a watched game kicks off and samples from the league's seed (the one its matches are played with)
    watch_seed = scheduler.settings.seed if scheduler is not None else DEFAULT_SEED

    def matches(limit: int = 50, model: str | None = None) -> list[dict]:
        with db.session(url) as s:
            q = select(db.Match).where(db.Match.hub == hub)
            if model:
                q = q.where((db.Match.model1 == model) | (db.Match.model2 == model))
            rows = s.scalars(q.order_by(db.Match.id.desc()).limit(limit)).all()
        return [match_dict(m) for m in rows]

    def get_match(match_id: int) -> db.Match:
        with db.session(url) as s:
            m = s.get(db.Match, match_id)
        if m is None or m.hub != hub:
            raise HTTPException(404, f"No league match #{match_id}.")
        return m

    def status() -> dict:
        if scheduler is None:
            return {"scheduled": False}
        return {
            "scheduled": True,
            "every_s": scheduler.every_s,
            "rounds": scheduler.rounds,
            "last_error": scheduler.last_error,
            "playing": [list(pair) for pair in scheduler.playing],
        }

    @router.get("/league", include_in_schema=False)
    def league_page(request: Request) -> Response:
        rows = table(hub, url)
        for r in rows:
            r["spark"] = spark(r["trend"])
        return page(request, "league.html", rows=rows, matches=matches(30), league=status())

    @router.get("/league/matches/{match_id}", include_in_schema=False)
    def match_page(request: Request, match_id: int = PathParam(ge=1, le=10**12)) -> Response:
        return page(request, "league_match.html", m=match_dict(get_match(match_id)))

    @router.get("/league/matches/{match_id}/replay.mp4", include_in_schema=False)
    def match_replay(match_id: int = PathParam(ge=1, le=10**12)) -> FileResponse:
        from deeprl.league.runner import replay_dir

        m = get_match(match_id)
        if not m.replay or not REPLAY_NAME.match(m.replay) or not (replay_dir() / m.replay).is_file():
            raise HTTPException(404, "This match has no replay.")
        return FileResponse(replay_dir() / m.replay, media_type="video/mp4")

    @router.get("/league/models/{ns}/{name}", include_in_schema=False)
    def model_page(
        request: Request, ns: str = PathParam(pattern=PART_PATTERN), name: str = PathParam(pattern=PART_PATTERN)
    ) -> Response:
        h = history(f"{ns}/{name}", hub, url)
        if not h["matches"]:
            raise HTTPException(404, f"{ns}/{name} has played no league match.")
        series = [1200.0] + [m["elo_after"] for m in reversed(h["matches"]) if m["rated"]]
        return page(request, "league_model.html", h=h, chart=plot(series))

    @router.get(
        "/api/league",
        tags=["league"],
        summary="The league table (Elo from the stored matches)",
        response_model=None,  # the dict as it is (the annotation below is not a schema)
    )
    def api_table() -> dict:
        return {"env": "ML-Agents-SoccerTwos", "rows": table(hub, url), "league": status()}

    @router.get(
        "/api/league/matches/{match_id}",
        tags=["league"],
        summary="One stored league match",
        responses=NOT_FOUND,
        response_model=None,  # the dict as it is (the annotation below is not a schema)
    )
    def api_match(match_id: int = PathParam(ge=1, le=10**12)) -> dict:
        return match_dict(get_match(match_id))

    @router.get("/league/play/{ns}/{name}", include_in_schema=False)
    def play_page(
        request: Request, ns: str = PathParam(pattern=PART_PATTERN), name: str = PathParam(pattern=PART_PATTERN)
    ) -> Response:
        return page(
            request,
            "league_play.html",
            model=f"{ns}/{name}",
            seconds=PLAY_SECONDS,
            ws=f"/league/play/{ns}/{name}/ws",
            watch=None,
        )

    @router.websocket("/league/play/{ns}/{name}/ws")
    async def play_socket(ws: WebSocket, ns: str, name: str) -> None:
        if not await open_game(ws, ns, name, players):
            return
        try:
            await play_game(ws, f"{ns}/{name}", hub)
        except WebSocketDisconnect:
            pass
        finally:
            players.leave()

    @router.get("/league/watch", include_in_schema=False)
    def watch_page(
        request: Request, blue: str = Query(pattern=MODEL_PATTERN), purple: str = Query(pattern=MODEL_PATTERN)
    ) -> Response:
        return page(
            request,
            "league_play.html",
            watch={"blue": blue, "purple": purple, "seed": watch_seed},
            seconds=PLAY_SECONDS,
            ws="/league/watch/ws?" + urlencode({"blue": blue, "purple": purple}),
        )

    @router.websocket("/league/watch/ws")
    async def watch_socket(ws: WebSocket) -> None:
        if not same_origin_ws(ws):
            await ws.close(code=1008)
            return
        await ws.accept()
        blue, purple = ws.query_params.get("blue", ""), ws.query_params.get("purple", "")
        if not (re.fullmatch(MODEL_PATTERN, blue) and re.fullmatch(MODEL_PATTERN, purple)):
            await ws.send_json({"error": "Give two model names, ?blue=NS/NAME&purple=NS/NAME."})
            await ws.close()
            return
        if not players.enter(2):
            await ws.send_json({"error": "Too many games are running; try again in a minute."})
            await ws.close()
            return
        try:
            await watch_game(ws, blue, purple, hub, watch_seed)
        except WebSocketDisconnect:
            pass
        finally:
            players.leave(2)

    return router


def match_dict(m: db.Match) -> dict:
    return {
        "id": m.id,
        "model1": m.model1,
        "model2": m.model2,
        "revision1": m.revision1,
        "revision2": m.revision2,
        "result": m.result,
        "won": m.won,
        "drawn": m.drawn,
        "lost": m.lost,
        "seed": m.seed,
        "max_steps": m.max_steps,
        "k": m.k,
        "rated": m.rated,
        "forfeit": m.forfeit,
        "error": m.error,
        "elo1_before": m.elo1_before,
        "elo2_before": m.elo2_before,
        "elo1_after": m.elo1_after,
        "elo2_after": m.elo2_after,
        "played_at": m.played_at.isoformat(),
        "env": m.env,
        "replay_url": f"/league/matches/{m.id}/replay.mp4" if m.replay else None,
    }


def same_origin_ws(ws: WebSocket) -> bool:
    """A browser's WebSocket carries its page's Origin: only this site's own pages may open a game."""
    origin = ws.headers.get("origin")
    host = ws.headers.get("host", "")
    return origin is None or origin.split("://", 1)[-1] == host


async def open_game(ws: WebSocket, ns: str, name: str, slots: Players) -> bool:
    """Accept a game's WebSocket from this site's own page for the model NS/NAME and take one of `slots`; False
    (the socket told why and closed) when the origin, the name or the room is wrong. The caller leaves the slot."""
    if not same_origin_ws(ws):
        await ws.close(code=1008)
        return False
    await ws.accept()
    if not (re.match(PART_PATTERN, ns) and re.match(PART_PATTERN, name)):
        await ws.send_json({"error": "That is not a model name."})
        await ws.close()
        return False
    if not slots.enter():
        await ws.send_json({"error": "Too many games are running; try again in a minute."})
        await ws.close()
        return False
    return True


# ---------------------------------------------------------------------------------------------------------
# A game in the browser: a person against an agent, or two agents watched live


@dataclass(frozen=True)
class Driver:
    """A pushed model driving some of the four players (`players`: blue_0, blue_1, purple_0, purple_1 sliced)
    from its limited child."""

    model: str
    child: PlayChild
    players: slice


async def start_model(model: str, hub: str, seed: int | None = None) -> PlayChild:
    """The pushed model, loaded in its limited child (deeprl.league.play_child): the server reads its files from
    the hub and stages a copy, but never loads or runs it. PolicyFailed (or the hub's error) when it cannot play."""
    from deeprl.hub import get_hub
    from deeprl.league.play_child import LOAD_TIMEOUT_S, Limits, PlayChild

    folder = Path(await asyncio.to_thread(get_hub(hub).download, model))
    link_root = folder.parent.parent if hub == "hf" else None  # the repo's folder in the Hugging Face cache
    # the child's CPU budget is the game's length: one thread cannot burn more than that in a game
    return await PlayChild.start(folder, Limits(cpu_s=PLAY_SECONDS + LOAD_TIMEOUT_S), link_root, seed)


async def start_models(models: list[str], hub: str, seed: int | None = None) -> list[PlayChild] | str:
    """Each model in its own child, loaded side by side; when any cannot play, the others are closed and the
    answer is the page's sentence naming each model that failed."""
    from deeprl.league.play_child import PlayChild

    started = await asyncio.gather(*(start_model(m, hub, seed) for m in models), return_exceptions=True)
    failed = [f"{m} cannot play: {str(r)[:300]}" for m, r in zip(models, started) if isinstance(r, BaseException)]
    if not failed:
        return [c for c in started if isinstance(c, PlayChild)]
    await asyncio.gather(*(c.close() for c in started if isinstance(c, PlayChild)))
    return "; ".join(failed)


def human_action(pressed: set[str]) -> np.ndarray:
    """The three action branches (forward/back, strafe, turn) from the keys held down."""
    a = np.zeros(3, dtype=np.int64)
    for key in ("up", "down", "left", "right", "strafe_left", "strafe_right"):
        if key in pressed:
            branch, value = KEYS[key]
            a[branch] = value
    return a


def snapshot(core: SoccerCore, score: list[int], t: float) -> dict:
    return {
        "pos": core.pos[0].round(3).tolist(),
        "angle": core.angle[0].round(3).tolist(),
        "ball": core.ball[0].round(3).tolist(),
        "score": list(score),
        "t": round(t, 1),
    }


def hello(**names: str | int | bool) -> dict:
    """The first message of a game: who plays, and the field's geometry and clock the page draws with."""
    from deeprl.envs import soccer

    return {
        "hello": {
            **names,
            "field": [soccer.FIELD_LENGTH, soccer.FIELD_WIDTH],
            "goal": soccer.GOAL_HALF_WIDTH,
            "agent": soccer.AGENT_RADIUS,
            "ball": soccer.BALL_RADIUS,
            "dt": soccer.DT,
            "seconds": PLAY_SECONDS,
        }
    }


async def play_game(ws: WebSocket, model: str, hub: str) -> None:
    """The person is blue_0; the model plays blue_1 (the person's teammate) and both purple players, in one child
    (its answer for blue_0 is replaced by the person's keys). A fresh kick-off each game (the clock's seed)."""
    children = await start_models([model], hub)
    if isinstance(children, str):
        await ws.send_json({"error": children})
        await ws.close()
        return
    core_seed = int(time.time())
    greeting = hello(model=model, human=True)
    await run_game(ws, greeting, [Driver(model, children[0], slice(0, 4))], core_seed, pressed=set())


async def watch_game(ws: WebSocket, blue: str, purple: str, hub: str, seed: int) -> None:
    """Two models play each other, each from its own child: `blue` plays blue_0 and blue_1, `purple` both purple
    players. The kick-offs and both children's action sampling use the league's seed, so the same two models play
    the same game every time it is watched; no message from the page moves a player."""
    children = await start_models([blue, purple], hub, seed)
    if isinstance(children, str):
        await ws.send_json({"error": children})
        await ws.close()
        return
    drivers = [Driver(blue, children[0], slice(0, 2)), Driver(purple, children[1], slice(2, 4))]
    await run_game(ws, hello(blue=blue, purple=purple, seed=seed, human=False), drivers, seed, pressed=None)


async def run_game(ws: WebSocket, greeting: dict, drivers: list[Driver], seed: int, pressed: set[str] | None) -> None:
    """Send `greeting` (hello's), then step the game at the env's real-time rate (one decision every DT seconds)
    for PLAY_SECONDS, streaming each state to the page; after a goal the teams kick off again (`seed` seeds the
    kick-offs). Each driver's child is asked for its players' actions, side by side (the server only awaits their
    answers; the event loop never runs a policy); one that fails to answer ends the game with a sentence naming
    its model. `pressed` holds the keys the page says are down (blue_0 follows them), or is None when the page
    only watches (its messages are read and dropped). The children are closed however the game ends."""
    from deeprl.envs import soccer
    from deeprl.league.play_child import PolicyFailed

    reader: asyncio.Task | None = None
    try:
        await ws.send_json(greeting)
        core = soccer.SoccerCore(1, max_steps=10**9, seed=seed)
        score = [0, 0]

        async def read_keys() -> None:
            while True:
                msg = await ws.receive_json()
                keys = msg.get("keys") if isinstance(msg, dict) else None
                if pressed is not None and isinstance(keys, list):
                    pressed.clear()
                    pressed.update(k for k in keys[:8] if k in KEYS)

        reader = asyncio.create_task(read_keys())
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(int(PLAY_SECONDS / soccer.DT)):
            if reader.done():  # the page went away (or sent something that is not JSON)
                return
            obs = core.observe()[0]
            answers = await asyncio.gather(*(d.child.act(obs) for d in drivers), return_exceptions=True)
            actions = np.zeros((soccer.N_AGENTS, 3), dtype=np.int64)
            for d, answer in zip(drivers, answers):
                if isinstance(answer, PolicyFailed):
                    await ws.send_json({"error": f"{d.model} stopped playing: {answer}", "score": score})
                    await ws.close()
                    return
                if isinstance(answer, BaseException):
                    raise answer
                actions[d.players] = answer[d.players]
            if pressed is not None:
                actions[0] = human_action(pressed)
            _, term, trunc, scorer = core.step(actions[None])
            if term[0]:
                score[int(scorer[0])] += 1
                core.reset()
            await ws.send_json(snapshot(core, score, (i + 1) * soccer.DT))
            # real time: the next decision is due DT after the previous one, however long this one took
            await asyncio.sleep(max(0.0, start + (i + 1) * soccer.DT - loop.time()))
        await ws.send_json({"over": {"score": score}})
        await ws.close()
    finally:
        if reader is not None:
            reader.cancel()
        await asyncio.gather(*(d.child.close() for d in drivers))
