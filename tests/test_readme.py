"""The README's tour is true: its console blocks marked `<!-- cheap -->` run in order on a fresh DEEPRL_HOME, every
command succeeds (or fails the way the README shows), and each command's output starts as the README says.

What is compared, per command (stdout and stderr together, as a terminal shows them): the first line the README
shows against the first line the command prints, both without chatter (notes, progress lines, 'evaluating ...'),
and the last line the README shows against any line of the output. Values that vary from run to run are normalized:
timings, rates, commit hashes, dates, the DEEPRL_HOME path, and the figures of agents trained with torch (whose
float arithmetic differs between CPUs); a README line ending in '...' is a prefix.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = "<!-- cheap -->"
TABULAR = ("Taxi-v3", "FrozenLake-v1")  # numpy-only training: the same figures on every machine
CHATTER = re.compile(r"^(note:|warning:|\[\S+ \S+\] |evaluating )")


def cheap_blocks(text: str) -> list[list[tuple[str, list[str]]]]:
    """[(command, shown output lines)] of each ```console block right after the marker, in README order."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].strip() == MARKER and i + 1 < len(lines) and lines[i + 1].strip() == "```console":
            i += 2
            block: list[tuple[str, list[str]]] = []
            while lines[i].strip() != "```":
                line = lines[i]
                if line.startswith("$ "):
                    block.append((line[2:].split("  #")[0].strip(), []))
                elif line.strip() and block:
                    block[-1][1].append(line)
                i += 1
            blocks.append(block)
        i += 1
    return blocks


def normalize(line: str, home: str | None = None) -> str:
    if home:
        line = line.replace(home, "~/.cache/deeprl")
    line = re.sub(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b", "<sha>", line)
    line = re.sub(r"\([\d,.]+ [a-z]+/s\)", "(<rate>)", line)
    line = re.sub(r"\(\d+(\.\d+)? s\)", "(<t> s)", line)
    line = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", "<date>", line)
    m = re.match(r"(\S+): mean_reward=", line)
    if m and not m.group(1).startswith(TABULAR):
        line = re.sub(r"-?\d+\.\d+", "<x>", line)
    return " ".join(line.split())


def matches(shown: str, actual: str) -> bool:
    if shown.endswith("..."):
        return actual.startswith(shown[:-3].rstrip())
    return shown == actual


def test_readme_marks_the_tour_cheap():
    blocks = cheap_blocks(README.read_text())
    commands = [c for block in blocks for c, _ in block]
    assert len(blocks) >= 4 and commands[0].startswith("deeprl train")
    # the tour's load needs its push, shown before it
    load = next(i for i, c in enumerate(commands) if c.startswith("deeprl load alice/q-FrozenLake"))
    assert any(c.startswith("deeprl push") and "alice/q-FrozenLake-v1-4x4-noSlippery" in c for c in commands[:load])


def test_the_tour_runs_in_order(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "DEEPRL_HOME": str(home), "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    env.pop("DEEPRL_DATABASE_URL", None)
    work = tmp_path / "work"
    work.mkdir()
    for block in cheap_blocks(README.read_text()):
        for command, shown in block:
            argv = shlex.split(command)
            assert argv[0] == "deeprl", command
            # stdout and stderr as a terminal shows them: one stream, unbuffered, in the order written
            out = subprocess.run(
                [sys.executable, "-m", "deeprl", *argv[1:]],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                cwd=work,
                timeout=600,
            )
            expected = [normalize(s) for s in shown if s.strip() != "..." and not CHATTER.match(s)]
            fails = bool(expected) and expected[0].startswith("deeprl: error:")
            assert out.returncode == (2 if fails else 0), f"$ {command}\n{out.stdout}"
            if not expected:
                continue
            actual = [normalize(s, str(home)) for s in out.stdout.splitlines() if s.strip()]
            first = next((s for s in actual if not CHATTER.match(s)), "")
            assert matches(expected[0], first), f"$ {command}\nREADME: {expected[0]}\nactual: {first}"
            last = normalize(shown[-1])
            if last != "..." and not CHATTER.match(last):
                assert any(matches(last, a) for a in actual), (
                    f"$ {command}\nREADME's last line: {last}\nnot in:\n" + "\n".join(actual)
                )


@pytest.mark.parametrize("block", [1, 2])
def test_setup_commands_are_unchanged(block):
    """CI runs the second ```sh block as its test command: the two set-up commands stay as they are."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)
    assert "pip install torch==2.13.0 && pip install -e" in blocks[block - 1]
    assert "https://download.pytorch.org/whl/cpu" in README.read_text()
