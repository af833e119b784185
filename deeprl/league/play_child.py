"""A pushed model's players in a browser game (deeprl.web.league), computed in a limited child process.

Everything read from a hub repo is hostile, so the web server neither loads the model nor runs its policy: each
game starts `python -m deeprl.league.play_child FOLDER` on a read-only copy of the model, under the leaderboard's
limits (deeprl.leaderboard.sandbox: scrubbed environment, CPU, memory and file-size limits, a session of its own),
and asks it for actions over the child's stdin and stdout, one request and one answer per decision. A model that
fails to load, crashes, hangs or runs out of memory ends its game with a sentence for the page; the server's event
loop only ever awaits the pipe (`PlayChild.act`), with a deadline.

The pipe, one game's worth:

- the child first writes one line: {"ready": true} once the model is loaded, or {"error": why} and exits;
- each request is the four players' observations, N_AGENTS x OBS_SIZE float32 in native byte order (raw bytes:
  the server writes them, the child reads exactly that many);
- each answer is one line of N_AGENTS x 3 digits, each an action branch's choice 0, 1 or 2, or {"error": why}
  when the model failed on that request (the child then exits);
- the end of the requests (the server closed the pipe, or died) ends the child, so none outlives its game.

The model plays all four players in one batch (the server overrides the person's, or, when two models watch-play
each other, takes each child's two players of its own team); the game itself (the core, the score, the clock) stays
in the server. `--seed N` seeds the child's action sampling, so a watched game between two models with the league's
seeds plays the same way every time it is watched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Self

import numpy as np

from deeprl.envs.soccer.core import N_AGENTS, OBS_SIZE
from deeprl.leaderboard.sandbox import DEFAULT_MEMORY_MB, _limits, child_env, death, stage, unstage

if TYPE_CHECKING:
    from deeprl.league.game import Guarded

REQUEST_BYTES = N_AGENTS * OBS_SIZE * 4  # float32 observations
ANSWER_DIGITS = N_AGENTS * 3
LOAD_TIMEOUT_S = 60.0  # importing torch and reading the weights, on a busy machine
DECISION_TIMEOUT_S = 5.0  # one decision of a small network takes milliseconds; this is a hang
MAX_LINE = 1 << 16  # the longest line the child may write (an error sentence is far shorter)


class PolicyFailed(Exception):
    """The model's child cannot go on: one sentence (without the model's name) for the page."""


@dataclass(frozen=True)
class Limits:
    """The child's budget: `cpu_s` seconds of CPU (the leaderboard's limits give it a few more), `memory_mb` of
    address space, and the deadlines the server waits for it to load and for each decision."""

    cpu_s: float
    memory_mb: int = DEFAULT_MEMORY_MB
    load_timeout_s: float = LOAD_TIMEOUT_S
    decision_timeout_s: float = DECISION_TIMEOUT_S


class PlayChild:
    """The server's end of one game's pipe. `start` stages the model and waits until it is loaded; `act` asks
    for the four players' actions; `close` kills the child and removes its folder (always call it)."""

    CHILD_MODULE = "deeprl.league.play_child"  # what the child runs: python -m CHILD_MODULE MODEL_FOLDER
    TMP_PREFIX = "play"

    def __init__(self, proc: asyncio.subprocess.Process, tmp: Path, limits: Limits):
        self.proc, self.tmp, self.limits = proc, tmp, limits
        self.pid = proc.pid

    @classmethod
    async def start(cls, folder: Path, limits: Limits, link_root: Path | None = None, seed: int | None = None) -> Self:
        """A child playing the model in `folder` (a hub revision's files), once it says it is ready; its action
        sampling seeded with `seed` (None: unseeded). PolicyFailed when it cannot play. The child is
        `python -m CHILD_MODULE MODEL_FOLDER [--seed N]`: a subclass with another game names its own module."""
        tmp = Path(tempfile.mkdtemp(prefix=f"deeprl-{cls.TMP_PREFIX}-"))
        model, work = tmp / "model", tmp / "work"
        try:
            await asyncio.to_thread(stage, folder, model, link_root)  # up to the weights' size budget: off the loop
        except (OSError, ValueError) as exc:  # ValueError: the sandbox cannot tell which files are the model
            _remove(tmp)
            why = f"its files could not be copied ({exc.strerror})" if isinstance(exc, OSError) else str(exc)
            raise PolicyFailed(why) from None
        work.mkdir()
        seeded = [] if seed is None else ["--seed", str(int(seed))]
        try:
            with open(work / "stderr.txt", "wb") as err:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    cls.CHILD_MODULE,
                    str(model),
                    *seeded,
                    cwd=work,
                    env=child_env(work),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=err,
                    limit=MAX_LINE,
                    preexec_fn=_limits(limits.memory_mb, limits.cpu_s),
                )
        except OSError as exc:
            _remove(tmp)
            raise PolicyFailed(f"its process could not start ({exc.strerror})") from None
        child = cls(proc, tmp, limits)
        try:
            line = await child._line(limits.load_timeout_s, "load")
            reply = _json(line)
            if reply.get("ready") is not True:
                raise PolicyFailed(str(reply.get("error") or "it did not say it was ready")[:300])
        except BaseException:
            await child.close()
            raise
        return child

    async def act(self, obs: np.ndarray) -> np.ndarray:
        """The (N_AGENTS, 3) actions for one observation (N_AGENTS, OBS_SIZE); PolicyFailed when the child died,
        hung past the decision deadline or answered something that is not an action."""
        line = await self._ask(obs)
        text = line.strip()
        if len(text) == ANSWER_DIGITS and all(c in b"012" for c in text):
            return (np.frombuffer(text, dtype=np.uint8) - ord("0")).astype(np.int64).reshape(N_AGENTS, 3)
        raise PolicyFailed(str(_json(line).get("error") or "it answered something that is not an action")[:300])

    async def _ask(self, obs: np.ndarray) -> bytes:
        """One round trip: the observation in as raw float32, the child's answer line back within the decision
        deadline; PolicyFailed when the child died or hung."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(np.ascontiguousarray(obs, dtype=np.float32).tobytes())
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise PolicyFailed(await self._death()) from None
        return await self._line(self.limits.decision_timeout_s, "answer")

    async def _line(self, timeout_s: float, doing: str) -> bytes:
        """The child's next line, within `timeout_s` ("load" or "answer": what it is `doing`); PolicyFailed when it
        ended or took too long."""
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        except TimeoutError:
            raise PolicyFailed(f"it did not {doing} within {timeout_s:g} s and was stopped") from None
        except ValueError:  # a line over MAX_LINE
            raise PolicyFailed("it wrote an answer that is far too long") from None
        if not line.endswith(b"\n"):  # end of file: the child is gone
            raise PolicyFailed(await self._death())
        return line

    async def _death(self) -> str:
        """Why the child ended (its exit status and the end of what it wrote to stderr)."""
        try:
            code = await asyncio.wait_for(self.proc.wait(), 5.0)
        except TimeoutError:
            code = None
        try:
            with open(self.tmp / "work" / "stderr.txt", "rb") as fh:
                fh.seek(max(0, os.fstat(fh.fileno()).st_size - 4000))
                err = fh.read()
        except OSError:
            err = b""
        return death(code, err, self.limits.memory_mb, "its process")

    async def close(self) -> None:
        """Kill the child (its whole session) and remove its folder; safe to call twice."""
        if self.proc.returncode is None:  # not yet reaped: its pid is still its own
            try:
                os.killpg(self.pid, 9)
            except OSError:
                pass
        try:
            await asyncio.wait_for(self.proc.wait(), 5.0)
        except TimeoutError:
            pass
        finally:
            if self.tmp.exists():
                await asyncio.to_thread(_remove, self.tmp)


def _json(line: bytes) -> dict:
    try:
        item = json.loads(line)
    except (ValueError, RecursionError):
        return {}
    return item if isinstance(item, dict) else {}


def _remove(tmp: Path) -> None:
    """Remove a game's folder (its staged model is read-only)."""
    if (tmp / "model").exists():
        unstage(tmp / "model")
    shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------
# The child


def serve(team: Guarded, requests: BinaryIO, answers: BinaryIO) -> int:
    """Answer requests until the server closes the pipe (0) or the model fails (1, after saying why)."""
    from deeprl.league.game import Blamed

    sides = np.array([0, 1])
    while True:
        data = requests.read(REQUEST_BYTES)
        if len(data) < REQUEST_BYTES:
            return 0  # the game is over
        # the four players as two teams of two (PolicyTeam's batch): one forward pass for all of them
        obs = np.frombuffer(data, dtype=np.float32).reshape(2, 2, OBS_SIZE)
        try:
            actions = team.act(obs, None, sides).reshape(N_AGENTS, 3)  # type: ignore[arg-type]
        except Blamed as exc:
            return _say(answers, {"error": str(exc)})
        if ((actions < 0) | (actions > 2)).any():
            return _say(answers, {"error": "it chose an action outside 0, 1, 2"})
        answers.write(bytes(ord("0") + int(a) for a in actions.ravel()) + b"\n")
        answers.flush()


def _say(answers: BinaryIO, item: dict) -> int:
    """Write one JSON line to the server: 0 after {"ready": true}, 1 (the child's exit status) after an error."""
    answers.write((json.dumps(item) + "\n").encode())
    answers.flush()
    return 0 if item.get("ready") else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deeprl.league.play_child")
    p.add_argument("model", help="the staged model folder")
    p.add_argument("--seed", type=int, default=None, help="seed the action sampling (a watched game's replays)")
    args = p.parse_args(argv)
    # the answers go to the real stdout; anything the loading prints goes to stderr instead of into the pipe
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    import torch

    from deeprl.league.game import Blamed, load

    torch.set_num_threads(1)
    if args.seed is not None:
        torch.manual_seed(args.seed)  # the policy samples from torch's global generator (as game.play seeds it)
    try:
        team = load(args.model, 1)
    except Blamed as exc:
        return _say(answers, {"error": str(exc)})
    _say(answers, {"ready": True})
    return serve(team, sys.stdin.buffer, answers)


if __name__ == "__main__":
    sys.exit(main())
