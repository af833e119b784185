"""Play with Huggy (Bonus Unit 1): `/huggy/NS/NAME` shows a pushed Huggy model running to a stick that the visitor
places with a click, as the course's "play with Huggy" Space does.

The dog's world (deeprl.envs.huggy) runs in the server; the model never does. As on the league's play page
(deeprl.web.league, deeprl.league.play_child), the pushed model is staged read-only and loaded in a child process
under the leaderboard's limits (CPU, memory, file size, a scrubbed environment), and the server only awaits its
answers over a pipe with a deadline. The page gets the dog's pose as JSON over a WebSocket, one message per
decision at the simulation's real-time rate, and draws it on a canvas from above; a click sends {"stick": [x, y]} in
metres and the stick moves there.

The pipe to the child (`python -m deeprl.web.huggy FOLDER`): the child writes {"ready": true} (or {"error": why})
once the model is loaded; each request is one observation, OBS_SIZE float32 in native byte order; each answer is one
JSON line {"action": [8 numbers in [-1, 1]]} or {"error": why}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
from fastapi import APIRouter, Path as PathParam, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response  # read by FastAPI from the routes' annotations

from deeprl.envs.huggy import DECISION_SECONDS, FIELD_HALF, N_JOINTS, OBS_SIZE
from deeprl.league.play_child import LOAD_TIMEOUT_S, Limits, PlayChild, PolicyFailed, _json
from deeprl.web.data import PART_PATTERN

if TYPE_CHECKING:
    from collections.abc import Callable

    from deeprl.envs.huggy import HuggyEnv

REQUEST_BYTES = OBS_SIZE * 4
PLAY_SECONDS = 120  # a game lasts at most this long
MAX_GAMES = 4  # Huggy games at once, each with a child on the server's CPU


class HuggyChild(PlayChild):
    """The server's end of one Huggy game's pipe: PlayChild's staging, limits, deadlines and clean-up, with the
    Huggy child and its request (one observation) and answer (8 joint velocities)."""

    CHILD_MODULE = "deeprl.web.huggy"
    TMP_PREFIX = "huggy"

    async def act(self, obs: np.ndarray) -> np.ndarray:
        """The 8 joint actions for one observation (OBS_SIZE,); PolicyFailed when the child died, hung past the
        decision deadline or answered something that is not an action."""
        reply = _json(await self._ask(obs))
        action = reply.get("action")
        if isinstance(action, list) and len(action) == N_JOINTS and all(isinstance(a, (int, float)) for a in action):
            return np.clip(np.nan_to_num(np.asarray(action, dtype=np.float64)), -1.0, 1.0)
        raise PolicyFailed(str(reply.get("error") or "it answered something that is not an action")[:300])


# ---------------------------------------------------------------------------------------------------------
# The routes


def huggy_router(*, hub: str, page: Callable[..., Response]) -> APIRouter:
    """The Huggy page and its WebSocket; `page` renders a template the way the rest of the site does."""
    from deeprl.web.league import Players, open_game

    router = APIRouter()
    games = Players(MAX_GAMES)

    @router.get("/huggy/{ns}/{name}", include_in_schema=False)
    def huggy_page(
        request: Request, ns: str = PathParam(pattern=PART_PATTERN), name: str = PathParam(pattern=PART_PATTERN)
    ) -> Response:
        return page(request, "huggy.html", model=f"{ns}/{name}", seconds=PLAY_SECONDS, ws=f"/huggy/{ns}/{name}/ws")

    @router.websocket("/huggy/{ns}/{name}/ws")
    async def huggy_socket(ws: WebSocket, ns: str, name: str) -> None:
        if not await open_game(ws, ns, name, games):
            return
        try:
            await play(ws, f"{ns}/{name}", hub)
        except WebSocketDisconnect:
            pass
        finally:
            games.leave()

    return router


async def start_huggy(model: str, hub: str) -> HuggyChild:
    """The pushed model in its limited child; the server reads its files from the hub but never loads them."""
    from deeprl.hub import get_hub

    folder = Path(await asyncio.to_thread(get_hub(hub).download, model))
    link_root = folder.parent.parent if hub == "hf" else None  # the repo's folder in the Hugging Face cache
    return await HuggyChild.start(folder, Limits(cpu_s=PLAY_SECONDS + LOAD_TIMEOUT_S), link_root)


def snapshot(env: HuggyEnv, t: float) -> dict:
    """What the page draws: the trunk (x, y, yaw), the feet (x, y), the stick, sticks fetched, the clock."""
    import pybullet as pb

    s = env._state
    yaw = math.atan2(s["rot"][1, 0], s["rot"][0, 0])
    feet = []
    for knee in env.joints[1::2]:  # each lower leg's frame is at the knee; the foot is LEG_LENGTH below it
        pos, orn = pb.getLinkState(env.dog, knee, physicsClientId=env.client)[4:6]
        down = np.array(pb.getMatrixFromQuaternion(orn)).reshape(3, 3)[:, 2]
        feet.append([round(pos[0] - 0.16 * down[0], 3), round(pos[1] - 0.16 * down[1], 3)])
    return {
        "dog": [round(float(s["pos"][0]), 3), round(float(s["pos"][1]), 3), round(yaw, 3)],
        "feet": feet,
        "stick": [round(float(env.stick[0]), 3), round(float(env.stick[1]), 3)],
        "sticks": env.sticks,
        "t": round(t, 2),
    }


def clicked_stick(msg: Any) -> tuple[float, float] | None:
    """The stick's new place from a page message {"stick": [x, y]} (metres, clamped to the field), or None."""
    stick = msg.get("stick") if isinstance(msg, dict) else None
    if not (isinstance(stick, list) and len(stick) == 2 and all(isinstance(v, (int, float)) for v in stick)):
        return None
    x, y = (float(v) for v in stick)
    if not (math.isfinite(x) and math.isfinite(y)):
        return None
    return min(max(x, -FIELD_HALF), FIELD_HALF), min(max(y, -FIELD_HALF), FIELD_HALF)


async def play(ws: WebSocket, model: str, hub: str) -> None:
    """Load the model in its child, then step the dog at real time for PLAY_SECONDS, sending each pose; the page's
    clicks move the stick. The child is closed however the game ends."""
    from deeprl.envs.huggy import HuggyEnv

    try:
        child = await start_huggy(model, hub)
    except Exception as exc:  # the hub's error (no such model) or the child's (PolicyFailed)
        await ws.send_json({"error": f"{model} cannot play: {str(exc)[:300]}"})
        await ws.close()
        return
    env = HuggyEnv(max_decisions=10**9)
    reader: asyncio.Task | None = None
    try:
        obs, _ = env.reset(seed=int.from_bytes(os.urandom(4), "little"))
        await ws.send_json({"hello": {"model": model, "field": FIELD_HALF, "dt": DECISION_SECONDS}})
        await ws.send_json(snapshot(env, 0.0))

        async def read_clicks() -> None:
            while True:
                place = clicked_stick(await ws.receive_json())
                if place is not None:
                    env.place_stick(*place)

        reader = asyncio.create_task(read_clicks())
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(int(PLAY_SECONDS / DECISION_SECONDS)):
            if reader.done():  # the page went away (or sent something that is not JSON)
                return
            try:
                action = await child.act(obs)
            except PolicyFailed as exc:
                await ws.send_json({"error": f"{model} stopped playing: {exc}"})
                await ws.close()
                return
            obs, _, _, _, _ = env.step(action)
            await ws.send_json(snapshot(env, (i + 1) * DECISION_SECONDS))
            await asyncio.sleep(max(0.0, start + (i + 1) * DECISION_SECONDS - loop.time()))
        await ws.send_json({"over": {"sticks": env.sticks}})
        await ws.close()
    finally:
        if reader is not None:
            reader.cancel()
        env.close()
        await child.close()


# ---------------------------------------------------------------------------------------------------------
# The child


def serve(agent: Any, requests: BinaryIO, answers: BinaryIO) -> int:
    """Answer requests until the server closes the pipe (0) or the model fails (1, after saying why)."""
    while True:
        data = requests.read(REQUEST_BYTES)
        if len(data) < REQUEST_BYTES:
            return 0
        obs = np.frombuffer(data, dtype=np.float32)
        try:
            action = np.asarray(agent.act(obs, deterministic=False), dtype=np.float64).reshape(-1)
        except Exception as exc:  # the model's failure, whatever it is, ends its game
            return _say(answers, {"error": f"its policy failed ({str(exc)[:200]})"})
        if action.shape != (N_JOINTS,) or not np.isfinite(action).all():
            return _say(answers, {"error": "it chose an action that is not 8 finite numbers"})
        _say(answers, {"action": [round(float(a), 5) for a in action]})


def _say(answers: BinaryIO, item: dict) -> int:
    answers.write((json.dumps(item) + "\n").encode())
    answers.flush()
    return 1 if "error" in item else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deeprl.web.huggy")
    p.add_argument("model", help="the staged model folder")
    p.add_argument("--seed", type=int, default=None, help="seed the action sampling")
    args = p.parse_args(argv)
    answers = os.fdopen(os.dup(1), "wb")  # the pipe; anything loading prints goes to stderr
    os.dup2(2, 1)
    import torch

    from deeprl.agent import load_agent

    torch.set_num_threads(1)
    if args.seed is not None:
        torch.manual_seed(args.seed)
    try:
        agent = load_agent(args.model)
    except Exception as exc:  # a broken upload: one sentence for the page
        return _say(answers, {"error": f"its model could not be loaded ({str(exc)[:300]})"})
    if agent.env_id != "Huggy":
        return _say(answers, {"error": f"it was trained on {str(agent.env_id)[:100]}, not Huggy"})
    _say(answers, {"ready": True})
    return serve(agent, sys.stdin.buffer, answers)


if __name__ == "__main__":
    sys.exit(main())
