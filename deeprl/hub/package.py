"""`push`: a run folder -> a model repository (evaluate, record, card, commit), design.md "Model repository".

Everything is written into a private staging folder first and handed to the hub in one commit, so a push that
fails before the commit changes nothing in the hub. A replay that cannot be recorded is a warning, not a
lost push.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from deeprl.hub import check_hub, get_hub, validate_repo_id
from deeprl.log import warn
from deeprl.modelio import CONFIG_FILE, MODEL_FILE, atomic_write_json

LOG_DIRS = ("logs", "tb")  # TensorBoard logs of the run, pushed as logs/


def stage(model_dir: Path, repo_id: str, staging: Path, *, record_video: bool = True,
          n_eval_episodes: int | None = None, seed: int = 0, timings: dict | None = None,
          hub: str = "local") -> dict:
    """Write the repository's files into `staging`; returns the evaluation results."""
    from deeprl.agent import load_agent, model_dir as find_model_dir
    from deeprl.evaluation import evaluate
    from deeprl.hub.card import make_card
    from deeprl.modelio import read_config

    timings = timings if timings is not None else {}
    path = Path(model_dir)
    if path.suffix == ".pkl" and path.is_file():
        # a course notebook's q-learning.pkl (read by the restricted unpickler) is pushed as safetensors + JSON
        from deeprl import __version__
        from deeprl.modelio import tensors_to_bytes

        src, agent = None, load_agent(path)
        config = {**agent.config, "deeprl_version": __version__}
        model_bytes = tensors_to_bytes({"qtable": agent.qtable})
    else:
        src = find_model_dir(model_dir)  # a run folder, a model folder, or a logs/ parent (newest run)
        agent = load_agent(src)  # validates config, weights, shapes and NaNs before anything is written
        config, model_bytes = read_config(src), None

    t = time.perf_counter()
    results = evaluate(agent, n_eval_episodes=n_eval_episodes, seed=seed)
    timings["evaluate_s"] = time.perf_counter() - t

    t = time.perf_counter()
    has_video = False
    if record_video:
        from deeprl.video import record

        try:
            record(agent, staging / "replay.mp4", n_episodes=1, seed=seed)
            has_video = True
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # e.g. an env without rgb_array rendering, ffmpeg missing
            warn(f"no replay video for this push ({exc}); the model, card and results are pushed without it.")
    timings["video_s"] = time.perf_counter() - t

    t = time.perf_counter()
    if model_bytes is not None:
        (staging / MODEL_FILE).write_bytes(model_bytes)
    else:
        shutil.copy2(src / MODEL_FILE, staging / MODEL_FILE)
    config = {k: v for k, v in config.items() if k != "status"}
    config.setdefault("env_tag", results["env_tag"])
    atomic_write_json(staging / CONFIG_FILE, config)
    atomic_write_json(staging / "results.json", results)
    (staging / "README.md").write_text(make_card(repo_id, config, results, has_video, hub=hub), encoding="utf-8")
    for name in LOG_DIRS if src is not None else ():
        logs = src / name
        if logs.is_dir() and any(logs.iterdir()):
            shutil.copytree(logs, staging / "logs", dirs_exist_ok=True)
    timings["card_s"] = time.perf_counter() - t
    return results


def push_model(model_dir, repo_id: str, hub: str | None = "local", commit_message: str | None = None,
               record_video: bool = True, n_eval_episodes: int | None = None, seed: int = 0,
               timings: dict | None = None) -> dict:
    validate_repo_id(repo_id)
    hub_name = check_hub(hub)
    backend = get_hub(hub_name)
    if hasattr(backend, "check_ready"):  # say "log in first" before minutes of evaluation, not after
        backend.check_ready()
    timings = timings if timings is not None else {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deeprl-push-") as tmp:
        staging = Path(tmp) / "repo"
        staging.mkdir()
        results = stage(Path(model_dir), repo_id, staging, record_video=record_video,
                        n_eval_episodes=n_eval_episodes, seed=seed, timings=timings, hub=hub_name)
        message = commit_message or (f"Push {results['env_tag']} agent: mean_reward "
                                     f"{results['mean_reward']:.2f} +/- {results['std_reward']:.2f}")
        t = time.perf_counter()
        revision = backend.push(staging, repo_id, message)
        timings["commit_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    return {"repo_id": repo_id, "revision": revision, "location": backend.location(repo_id), "hub": hub_name,
            "results": results}
