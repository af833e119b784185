"""Shared pieces of the leaderboard, certification, web and browser tests: real models in a temp hub, and
synthetic database rows for ranking/certification cases that would take hours to train for real."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from deeprl import db
from deeprl.db import Evaluation, Repo

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def train_frozenlake(tmp: Path, episodes: int | None = None) -> Path:
    from deeprl.train import train

    overrides = {"n_training_episodes": episodes} if episodes else None
    run = train(
        "qlearning",
        "FrozenLake-v1",
        env_kwargs={"is_slippery": False},
        log_folder=tmp,
        show_progress=False,
        overrides=overrides,
    )
    return run.run_dir


def push(run_dir: Path, repo_id: str, video: bool = False) -> str:
    from deeprl.publish import push_model

    return push_model(run_dir, repo_id, record_video=video)["revision"]


def push_folder(folder: Path, repo_id: str, message: str = "test push") -> str:
    from deeprl.hub import get_hub

    return get_hub("local").push(folder, repo_id, message)


def staged_copy(repo_id: str) -> Path:
    """A writable copy of a hub repo's latest files, to push a doctored revision from."""
    from deeprl.hub import resolve_repo

    dest = Path(tempfile.mkdtemp(prefix="lb-stage-"))
    for item in resolve_repo(repo_id).iterdir():
        if item.name != ".git":
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, dest / item.name)
    return dest


def push_lying(good_repo: str, repo_id: str) -> str:
    """The good model's card (claims 1.00 +/- 0.00) over an all-zero Q-table (always 'left': never arrives)."""
    from deeprl.modelio import load_model, save_model

    folder = staged_copy(good_repo)
    config, tensors = load_model(folder)
    save_model(folder, {"qtable": np.zeros_like(np.asarray(tensors["qtable"]))}, config)
    return push_folder(folder, repo_id, "lying card")


def push_corrupt(good_repo: str, repo_id: str) -> str:
    folder = staged_copy(good_repo)
    (folder / "model.safetensors").write_bytes(b"\x00not a safetensors file at all")
    return push_folder(folder, repo_id, "corrupt weights")


def add_model(
    repo_id: str,
    env: str,
    result: float,
    *,
    pushed: int = 0,
    std: float = 1.0,
    status: str = "ok",
    error: str | None = None,
    algo: str = "qlearning",
    claimed: tuple[float, float] | None = None,
    flagged: bool = False,
    revision: str | None = None,
    active: bool = True,
    received: int | None = None,
) -> None:
    """A repo whose latest revision was 'evaluated' with these figures (pushed = minutes after T0; received, the
    hub's own time of receipt, defaults to the push time)."""
    when = T0 + timedelta(minutes=pushed)
    got = T0 + timedelta(minutes=pushed if received is None else received)
    sha = revision or hashlib.sha1(f"{repo_id} {pushed} {result}".encode()).hexdigest()
    with db.session() as s:
        repo = db.get_repo(s, repo_id)
        if repo is None:
            repo = Repo(hub="local", repo_id=repo_id, user=repo_id.split("/")[0])
            s.add(repo)
            s.flush()
        repo.latest_revision, repo.pushed_at, repo.active = sha, when, active
        ok = status == "ok"
        s.add(
            Evaluation(
                repo_pk=repo.id,
                revision=sha,
                pushed_at=when,
                env=env,
                algo=algo,
                status=status,
                error=error,
                mean_reward=result + std if ok else None,
                std_reward=std if ok else None,
                result=result if ok else None,
                n_eval_episodes=10 if ok else None,
                claimed_mean=claimed[0] if claimed else None,
                claimed_std=claimed[1] if claimed else None,
                flagged=flagged,
                claimed_env=env,
                message=f"push {pushed}",
                received_at=got,
            )
        )


# one model per assignment env at its minimum (push-only rows: any result), by assignment key
PASSING = {
    "unit1": ("LunarLander-v2", 250.0, "ppo"),
    "unit2-taxi": ("Taxi-v3", 7.5, "qlearning"),
    "unit2-frozenlake": ("FrozenLake-v1-4x4-no_slippery", 1.0, "qlearning"),
    "unit3": ("SpaceInvadersNoFrameskip-v4", 600.0, "dqn"),
    "unit4-cartpole": ("CartPole-v1", 500.0, "reinforce"),
    "unit4-pixelcopter": ("Pixelcopter-PLE-v0", 20.0, "reinforce"),
    "unit5": [("SnowballTarget", 10.0, "poca"), ("Pyramids", 1.0, "poca")],
    "unit6": ("PandaReachDense-v3", -0.5, "a2c"),
    "unit7": ("SoccerTwos", 0.0, "poca"),
    "unit8.1": ("CartPole-v1", 480.0, "ppo"),
    "unit8.2": ("doom_health_gathering_supreme", 12.0, "appo"),
}


def add_passing(user: str, keys) -> None:
    for key in keys:
        items = PASSING[key] if isinstance(PASSING[key], list) else [PASSING[key]]
        for env, result, algo in items:
            add_model(f"{user}/{key}-{env}"[:90], env, result, algo=algo, std=0.0)


def doctored(
    good_repo: str,
    repo_id: str,
    *,
    config: dict | None = None,
    card: str | None = None,
    tensors: dict | None = None,
    raw_config: bytes | None = None,
    message: str = "doctored",
    env: dict | None = None,
) -> str:
    """Push a copy of good_repo with config.json updated by `config` (a dict merged in), replaced by `raw_config`,
    a new card, or new tensors; `env` holds variables set only while pushing (GIT_COMMITTER_DATE to backdate)."""
    import json
    import os

    from deeprl.modelio import tensors_to_bytes

    folder = staged_copy(good_repo)
    if config is not None:
        conf = json.loads((folder / "config.json").read_text())
        conf.update(config)
        (folder / "config.json").write_text(json.dumps(conf))
    if raw_config is not None:
        (folder / "config.json").write_bytes(raw_config)
    if card is not None:
        (folder / "README.md").write_text(card)
    if tensors is not None:
        (folder / "model.safetensors").write_bytes(tensors_to_bytes(tensors))
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        return push_folder(folder, repo_id, message)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v
