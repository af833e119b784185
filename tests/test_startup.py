"""Light start-up (issue 20, item 6): the tabular commands never import torch.

Importing torch is most of a Q-Learning run's process (about 1 s and 190 MB of a 2 s, 230 MB run), and nothing a
tabular run does needs it. Each test runs the commands in a fresh interpreter, as a user's shell does, and reads
which modules got imported: a behaviour, not a time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Heavy libraries that no tabular command needs (torch's own packages and the ones that only come with it).
HEAVY = ("torch", "tensorboard", "safetensors.torch")

# Runs the commands in-process through the CLI's own entry point, then writes down what they imported.
SCRIPT = """
import json, sys
from deeprl.cli import main

argvs, report = json.loads(sys.argv[1]), sys.argv[2]
codes = [main(argv) for argv in argvs]
with open(report, "w") as fh:
    json.dump({"codes": codes, "modules": sorted(sys.modules)}, fh)
"""


def run_commands(tmp_path: Path, *argvs: list[str | Path]) -> tuple[list[int], set[str], str]:
    """(exit codes, modules imported, stdout + stderr) of the commands run one after another in one process."""
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps([[str(a) for a in argv] for argv in argvs]), str(report)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(report.read_text())
    return found["codes"], set(found["modules"]), proc.stdout + proc.stderr


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m in HEAVY or m.startswith(tuple(f"{h}." for h in HEAVY)))


@pytest.mark.parametrize(
    "env",
    [
        ["--env", "Taxi-v3"],
        ["--env", "FrozenLake-v1", "--env-kwargs", "map_name:4x4", "is_slippery:False"],
    ],
    ids=["taxi", "frozenlake"],
)
def test_tabular_train_evaluate_enjoy_never_import_torch(tmp_path: Path, env: list[str]) -> None:
    log = tmp_path / "logs"
    codes, modules, out = run_commands(
        tmp_path,
        ["train", "--algo", "qlearning", *env, "-f", log, "--hyperparams", "n_training_episodes:300", "--quiet"],
        ["evaluate", log, "--n-eval-episodes", "3"],  # the newest run under the log folder
        ["enjoy", log, "--no-render"],
    )
    assert codes == [0, 0, 0], out
    assert "Saved qlearning model" in out and "mean_reward=" in out and "episode 1: return" in out
    assert "numpy" in modules and "gymnasium" in modules  # the commands did run their work
    assert heavy(modules) == []


def test_a_resumed_tabular_run_never_imports_torch(tmp_path: Path) -> None:
    train: list[str | Path] = ["train", "--algo", "qlearning", "--env", "Taxi-v3", "-f", tmp_path, "--quiet"]
    codes, modules, out = run_commands(
        tmp_path,
        [*train, "--hyperparams", "n_training_episodes:200"],
        [*train, "--resume", "--hyperparams", "n_training_episodes:400"],
    )
    assert codes == [0, 0], out
    (config,) = tmp_path.glob("qlearning/*/config.json")
    assert json.loads(config.read_text())["trained"]["episodes"] == 400
    assert heavy(modules) == []


def test_device_cuda_on_a_tabular_run_is_a_note_not_an_import(tmp_path: Path) -> None:
    # finding out whether a GPU is there would import torch; a numpy-only algorithm runs on the CPU either way
    train: list[str | Path] = ["train", "--algo", "qlearning", "--env", "FrozenLake-v1", "-f", tmp_path, "--quiet"]
    codes, modules, out = run_commands(
        tmp_path, [*train, "--hyperparams", "n_training_episodes:50", "--device", "cuda"]
    )
    assert codes == [0], out
    assert "--device cuda is ignored" in out
    assert heavy(modules) == []


def test_a_torch_algorithm_still_seeds_and_checkpoints_torch(tmp_path: Path) -> None:
    # the other side of the switch: REINFORCE imports torch inside its train(), after the seeding, so torch's
    # seeding must not depend on torch being imported already. Two runs of one seed in one process: without it
    # the second network would start from where the first left torch's generator.
    from deeprl.modelio import read_tensors

    train: list[str | Path] = ["train", "--algo", "reinforce", "--env", "CartPole-v1", "--seed", "3", "--quiet"]
    budget = ["--hyperparams", "n_training_episodes:2", "--device", "cpu"]
    codes, modules, out = run_commands(
        tmp_path, [*train, *budget, "-f", tmp_path / "a"], [*train, *budget, "-f", tmp_path / "b"]
    )
    assert codes == [0, 0], out
    assert "torch" in modules
    (a,), (b,) = (list((tmp_path / run).glob("reinforce/*")) for run in ("a", "b"))
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert "rng.torch" in read_tensors(a / "checkpoint.safetensors")[0]
