"""The play page's real-time rate (issue 18): frames per second a browser receives and input-to-screen latency.

    python benchmarks/bench_play.py [--seconds 20] [--presses 12]

Starts `deeprl serve` on loopback with a local hub holding one SoccerTwos model (a short self-play run trained
here, pushed as bench/soccer), opens the play page's WebSocket as the page does, and measures:

- frames/s: state frames received per second of wall time (the game's rate is 1 / soccer.DT);
- input-to-screen latency: with the person's player standing still, the time from sending a key press (forward)
  to the first frame in which that player has moved; repeated `--presses` times, the keys released in between.

Both include the model's decisions for the other three players, computed in its limited child
(deeprl.league.play_child: one request and one answer over a pipe per step), and the JSON on loopback. The
decision's round trip through the pipe is measured on its own too (`--decisions` of them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup(home: Path) -> None:
    """A SoccerTwos model in the hub at `home` (trained briefly: its skill does not matter here)."""
    env = {**os.environ, "DEEPRL_HOME": str(home)}
    logs = home / "logs"
    cmd = [sys.executable, "-m", "deeprl"]
    subprocess.run([*cmd, "train", "--algo", "selfplay", "--env", "SoccerTwos", "-f", str(logs), "-n", "4000",
                    "--quiet"], check=True, env=env)  # fmt: skip
    run = next(logs.glob("selfplay/*"))
    subprocess.run([*cmd, "push", str(run), "--repo-id", "bench/soccer", "--no-video"], check=True, env=env)


def _wait_up(url: str, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the server did not answer {url} within {deadline_s} s")


async def _measure(port: int, seconds: float, presses: int) -> dict:
    import websockets
    from websockets.typing import Origin

    url = f"ws://127.0.0.1:{port}/league/play/bench/soccer/ws"
    async with websockets.connect(url, origin=Origin(f"http://127.0.0.1:{port}"), max_size=2**20) as ws:
        hello = json.loads(await ws.recv())
        if "hello" not in hello:
            raise SystemExit(f"the server refused the game: {hello}")
        dt = hello["hello"]["dt"]
        frames = 0
        latencies: list[float] = []
        start = time.perf_counter()
        last_pos = None
        still = 0
        pressed_at = None
        while time.perf_counter() - start < seconds and len(latencies) < presses:
            frame = json.loads(await ws.recv())
            if "over" in frame:
                break
            frames += 1
            pos = frame["pos"][0]
            if pressed_at is not None:
                if last_pos is not None and (abs(pos[0] - last_pos[0]) + abs(pos[1] - last_pos[1])) > 1e-3:
                    latencies.append(time.perf_counter() - pressed_at)
                    pressed_at = None
                    still = 0
                    await ws.send(json.dumps({"keys": []}))
            else:
                moving = last_pos is not None and (abs(pos[0] - last_pos[0]) + abs(pos[1] - last_pos[1])) > 1e-3
                still = 0 if moving else still + 1
                if still >= 8:  # standing still for 8 frames: press forward
                    pressed_at = time.perf_counter()
                    await ws.send(json.dumps({"keys": ["up"]}))
            last_pos = pos
        elapsed = time.perf_counter() - start
    return {"frames": frames, "seconds": elapsed, "fps": frames / elapsed, "game_fps": 1 / dt, "latencies": latencies}


async def _decisions(home: Path, n: int) -> list[float]:
    """Seconds per decision of the pushed model in its limited child, as the play page asks for them."""
    import numpy as np

    from deeprl.envs import soccer
    from deeprl.hub import get_hub
    from deeprl.league.play_child import Limits, PlayChild

    os.environ["DEEPRL_HOME"] = str(home)
    child = await PlayChild.start(get_hub("local").download("bench/soccer"), Limits(cpu_s=120))
    core, rng, took = soccer.SoccerCore(1, seed=0), np.random.default_rng(0), []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            await child.act(core.observe()[0])
            took.append(time.perf_counter() - t0)
            core.step(rng.integers(0, 3, size=(1, soccer.N_AGENTS, 3)))
    finally:
        await child.close()
    return took


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--presses", type=int, default=12)
    p.add_argument("--decisions", type=int, default=300)
    args = p.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="bench-play-"))
    _setup(home)
    port = _free_port()
    env = {**os.environ, "DEEPRL_HOME": str(home)}
    server = subprocess.Popen(
        [sys.executable, "-m", "deeprl", "serve", "--port", str(port), "--no-index", "--watch-interval", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_up(f"http://127.0.0.1:{port}/")
        r = asyncio.run(_measure(port, args.seconds, args.presses))
    finally:
        server.terminate()
        server.wait(10)
    took = sorted(asyncio.run(_decisions(home, args.decisions)))
    lat = sorted(r["latencies"])
    print(
        f"frames: {r['frames']} in {r['seconds']:.1f} s = {r['fps']:.1f} frames/s "
        f"(the game's rate: {r['game_fps']:.1f})"
    )
    if lat:
        print(
            f"input-to-screen latency over {len(lat)} presses: median {statistics.median(lat) * 1000:.0f} ms, "
            f"max {lat[-1] * 1000:.0f} ms (one game step is {1000 / r['game_fps']:.0f} ms)"
        )
    else:
        print("no key press was measured (the player never stood still)")
    print(
        f"the model's decision in its limited child over {len(took)} steps: median "
        f"{statistics.median(took) * 1000:.2f} ms, max {took[-1] * 1000:.1f} ms (request, forward pass, answer)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
