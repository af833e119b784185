"""Turn what a user names (a run folder, a model folder, a course .pkl file, an SB3 .zip, a hub repo id) into an
agent."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol

from deeprl.errors import UserError
from deeprl.modelio import CONFIG_FILE, MODEL_FILE, load_model

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


class Agent(Protocol):
    config: dict
    env_id: str
    env_kwargs: dict

    def act(self, obs: Any, deterministic: bool = True) -> Any: ...


def model_dir(target: str | Path, revision: str | None = None, hub: str | None = None) -> Path:
    """The local folder holding config.json + model.safetensors for a path or a hub repo id."""
    path = Path(target)
    if path.is_dir():
        if (path / CONFIG_FILE).exists() or (path / MODEL_FILE).exists():
            return path
        # a parent of run folders (logs/qlearning/): take the newest run that holds a model
        runs = sorted(
            (p for p in path.rglob(CONFIG_FILE) if (p.parent / MODEL_FILE).exists()), key=lambda p: p.stat().st_mtime
        )
        if runs:
            return runs[-1].parent
        raise UserError(f"{path} holds no model (no config.json and model.safetensors inside).")
    if path.suffix == ".zip" and path.is_file():
        raise UserError(
            f"{path} is a Stable-Baselines3 model file; convert it first with 'deeprl convert {path} -f DIR' "
            "and give DIR."
        )
    if path.exists():
        raise UserError(
            f"{path} is a file; give the model folder (with config.json and model.safetensors) or a course .pkl file."
        )
    if REPO_ID.match(str(target)) and not str(target).startswith((".", "/")):
        from deeprl.hub import resolve_repo  # local hub by default; raises UserError when unknown

        return resolve_repo(str(target), revision=revision, hub=hub)
    raise UserError(f"{target} does not exist (neither a folder nor a NAMESPACE/NAME repo id).")


def sb3_zip(path: Path) -> Path | None:
    """The SB3 model file a target names: a .zip, or the one .zip in a folder that holds no deeprl model (a Hub
    repo as huggingface_sb3 pushes it, an RL-Zoo run folder); None for anything else. Such a repo may hold a
    config.json too (package_to_hub writes SB3's data there): without model.safetensors it is not deeprl's."""
    if path.suffix == ".zip" and path.is_file():
        return path
    if path.is_dir() and not (path / MODEL_FILE).exists():
        found = [p for p in path.glob("*.zip") if p.is_file()]
        if len(found) == 1:
            return found[0]
    return None


def load_agent(
    target: str | Path, revision: str | None = None, hub: str | None = None, env: str | None = None
) -> Agent:
    """`env`: the env an SB3 .zip plays, where its name does not say (our own models record theirs)."""
    if str(target).endswith(".pkl") and Path(target).is_file():
        from deeprl.coursefiles import load_course_pickle

        return load_course_pickle(Path(target))
    sb3_file = sb3_zip(Path(target))
    if sb3_file is not None:
        from deeprl.sb3 import load_sb3_agent  # read without unpickling anything (deeprl/sb3.py)

        return load_sb3_agent(sb3_file, env=env)
    directory = model_dir(target, revision, hub)
    sb3_file = sb3_zip(directory)  # a hub repo pushed by the course's package_to_hub
    if sb3_file is not None:
        from deeprl.sb3 import load_sb3_agent

        return load_sb3_agent(sb3_file, env=env)
    config, tensors = load_model(directory)
    from deeprl.algos import get_algo

    agent = get_algo(config["algo"]).load_agent(config, tensors)
    agent.source = str(directory)
    return agent
