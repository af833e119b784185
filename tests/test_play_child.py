"""The play page's model in a limited child (deeprl.league.play_child): the child answers the four players'
actions, and a model that fails to load, dies, hangs or runs out of memory ends its game with a sentence on the
page while the server goes on serving other requests."""

import asyncio
import json
import os
import signal
import socket
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from deeprl.leaderboard.sandbox import DEFAULT_MEMORY_MB
from deeprl.league.play_child import DECISION_TIMEOUT_S, Limits, PlayChild, PolicyFailed
from test_league import CARD, TINY


@pytest.fixture(scope="module")
def soccer_model(tmp_path_factory) -> Path:
    """One tiny self-play SoccerTwos model (its skill does not matter here)."""
    from deeprl.train import train

    run = train(
        "selfplay",
        "SoccerTwos",
        overrides=TINY,
        n_timesteps=256,
        seed=3,
        log_folder=tmp_path_factory.mktemp("play-train"),
        env_kwargs={"max_steps": 40},
        device="cpu",
        show_progress=False,
    )
    return run.run_dir


def push(run: Path, repo_id: str, corrupt: bool = False) -> None:
    """The run's model pushed to the local hub as `repo_id` (with its weights replaced by junk when `corrupt`)."""
    import tempfile

    from deeprl.modelio import load_model, save_model
    from lb_helpers import push_folder

    folder = Path(tempfile.mkdtemp(prefix="play-push-"))
    config, tensors = load_model(run)
    save_model(folder, tensors, config)
    (folder / "README.md").write_text(CARD.format(name=repo_id))
    if corrupt:
        (folder / "model.safetensors").write_bytes(b"\x00 not safetensors")
    push_folder(folder, repo_id)


def children() -> list[int]:
    """This process's children running deeprl.league.play_child (the games' models)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"deeprl.league.play_child" in cmd:
            found.append(int(entry.name))
    return found


def until(condition, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, "it did not happen in time"
        time.sleep(0.05)
    return found


@contextmanager
def server():
    """The web app on a free loopback port (one event loop: a blocked loop would stall every request)."""
    import uvicorn

    from deeprl.web import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    srv = uvicorn.Server(
        uvicorn.Config(create_app(watch_interval_s=None), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    until(lambda: srv.started or not thread.is_alive(), 30)
    assert thread.is_alive(), "uvicorn did not start"
    try:
        yield port
    finally:
        srv.should_exit = True
        thread.join(10)


@contextmanager
def game(port: int, model: str):
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{port}/league/play/{model}/ws"
    with connect(url, origin=f"http://127.0.0.1:{port}", proxy=None, open_timeout=30) as ws:
        yield ws


def next_message(ws, key: str, seconds: float = 60.0) -> dict:
    """The first message holding `key`, read within `seconds` (frames before it are skipped)."""
    deadline = time.monotonic() + seconds
    while True:
        msg = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if key in msg:
            return msg
        assert "error" not in msg, msg


def serves(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/league", timeout=30) as r:
        return r.status == 200


# ---------------------------------------------------------------------------------------------------------
# The child on its own


def test_the_child_answers_actions_and_is_gone_when_closed(soccer_model):
    from deeprl.envs import soccer

    async def scenario() -> tuple[np.ndarray, int, Path]:
        child = await PlayChild.start(soccer_model, Limits(cpu_s=60))
        try:
            core = soccer.SoccerCore(1, seed=0)
            actions = [await child.act(core.observe()[0]) for _ in range(3)]
        finally:
            await child.close()
        return actions[-1], child.pid, child.tmp

    actions, pid, tmp = asyncio.run(scenario())
    assert actions.shape == (4, 3) and ((actions >= 0) & (actions <= 2)).all()
    assert pid not in children() and not tmp.exists()


def test_a_model_that_cannot_load_or_runs_out_of_memory_is_one_sentence(soccer_model, tmp_path):
    async def start(folder: Path, memory_mb: int = DEFAULT_MEMORY_MB) -> str:
        with pytest.raises(PolicyFailed) as info:
            child = await PlayChild.start(folder, Limits(cpu_s=60, memory_mb=memory_mb))
            await child.close()
        return str(info.value)

    empty = tmp_path / "empty"
    empty.mkdir()
    assert "its model could not be loaded" in asyncio.run(start(empty))
    # 150 MiB of address space cannot hold torch: the child dies while loading, and the limit is named
    assert "ran out of memory (limit 150 MiB)" in asyncio.run(start(soccer_model, memory_mb=150))
    assert not children()


# ---------------------------------------------------------------------------------------------------------
# Through the page's WebSocket, on a live server


def test_a_model_that_fails_to_load_ends_its_game_and_the_server_goes_on(soccer_model):
    push(soccer_model, "mallory/broken", corrupt=True)
    with server() as port:
        with game(port, "mallory/broken") as ws:
            msg = json.loads(ws.recv(timeout=60))
        assert msg["error"].startswith("mallory/broken cannot play: its model could not be loaded")
        with game(port, "nobody/nothing") as ws:
            assert "nobody/nothing cannot play" in json.loads(ws.recv(timeout=60))["error"]
        assert serves(port) and not children()


def test_a_child_that_dies_or_hangs_ends_its_game_and_the_server_goes_on(soccer_model):
    push(soccer_model, "alice/soccer")
    with server() as port:
        # killed mid-game (as the kernel kills one that eats memory): the page says so, the server plays on
        with game(port, "alice/soccer") as ws:
            next_message(ws, "hello")
            next_message(ws, "pos")
            [pid] = until(children)
            os.kill(pid, signal.SIGKILL)
            msg = next_message(ws, "error")
        assert msg["error"] == (
            f"alice/soccer stopped playing: its process was killed (signal 9); memory limit {DEFAULT_MEMORY_MB} MiB"
        )
        until(lambda: not children())
        # hung (stopped, so it never answers): the server keeps serving meanwhile and ends the game at the deadline
        with game(port, "alice/soccer") as ws:
            next_message(ws, "hello")
            next_message(ws, "pos")
            [pid] = until(children)
            os.kill(pid, signal.SIGSTOP)
            assert serves(port)
            msg = next_message(ws, "error", seconds=DECISION_TIMEOUT_S + 30)
        assert msg["error"] == (
            f"alice/soccer stopped playing: it did not answer within {DECISION_TIMEOUT_S:g} s and was stopped"
        )
        until(lambda: not children())
        with game(port, "alice/soccer") as ws:  # and a new game starts
            next_message(ws, "pos")
        assert serves(port)


def test_the_child_answers_digits_and_a_failing_model_with_its_reason():
    import io

    from deeprl.envs.soccer import OBS_SIZE, StillTeam
    from deeprl.league.game import Guarded
    from deeprl.league.play_child import serve

    class Failing:
        def act(self, obs, core, side):
            raise ValueError("a tensor of the wrong shape")

    request = np.zeros((4, OBS_SIZE), dtype=np.float32).tobytes()
    answers = io.BytesIO()
    assert serve(Guarded(StillTeam(), 1), io.BytesIO(request * 2), answers) == 0  # two requests, then the end
    assert answers.getvalue() == b"000000000000\n" * 2
    answers = io.BytesIO()
    assert serve(Guarded(Failing(), 1), io.BytesIO(request), answers) == 1
    assert json.loads(answers.getvalue()) == {
        "error": "it failed while playing (ValueError: a tensor of the wrong shape)"
    }
