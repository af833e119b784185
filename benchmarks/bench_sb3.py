"""Benchmark: the course's Stable-Baselines3 models through deeprl, in one run.

    python benchmarks/bench_sb3.py [--repeats 7] [--repos 100] [--workers N]

(a) Loading one SB3 .zip: deeprl's loader (deeprl.sb3: `data` read as JSON, `policy.pth` with
    `torch.load(weights_only=True)`, SB3's names mapped onto ours, the spaces checked against the env, our policy
    built) against SB3's own `PPO.load` / `A2C.load` / `DQN.load` (cloudpickle and torch.load) on the same files,
    alternated in one process, median of N each after a warm-up; the ratio is ours / SB3's. The models are the
    course's shapes, built by SB3 here: Unit 1's PPO MlpPolicy on LunarLander-v2, Unit 6's A2C MultiInputPolicy on
    PandaReachDense-v3, Unit 3's DQN CnnPolicy on SpaceInvadersNoFrameskip-v4. Ours is also split into reading the
    file and checking it against the env (building the env once, which SB3's load without an env skips).
(b) `deeprl index --hub hf --filter deep-rl-course` over N SB3-format repos in the stand-in Hub
    (tests/hf_standin.py), laid out as the course's package_to_hub writes them (the zip, SB3's data as config.json,
    the zip unzipped, the card, results.json, a 1 MiB replay), PPO / A2C / DQN on CartPole-v1 in turn: wall-clock,
    per model, and the evaluation child's own seconds (a fresh limited process per model, which imports torch).

Prints the figures and writes benchmarks/results/bench_sb3.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def course_models(folder: Path) -> dict[str, tuple[Path, type]]:
    """{name: (zip, SB3 class)} of the three course model shapes, built (untrained) and saved by SB3."""
    import ale_py
    import gymnasium as gym
    import panda_gym  # noqa: F401
    from stable_baselines3 import A2C, DQN, PPO
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    atari = VecFrameStack(make_atari_env("SpaceInvadersNoFrameskip-v4", seed=0), 4)
    models = {
        "ppo-LunarLander-v2": (PPO("MlpPolicy", "LunarLander-v3", seed=0), PPO),
        "a2c-PandaReachDense-v3": (A2C("MultiInputPolicy", "PandaReachDense-v3", seed=0), A2C),
        "dqn-SpaceInvadersNoFrameskip-v4": (DQN("CnnPolicy", atari, buffer_size=1000, seed=0), DQN),
    }
    out = {}
    for name, (model, cls) in models.items():
        path = folder / name / f"{name}.zip"  # a folder each: nothing else (a vec_normalize.pkl) lies beside it
        path.parent.mkdir()
        model.save(path)
        out[name] = (path, cls)
    atari.close()
    return out


def timed(fn, repeats: int) -> list[float]:
    """CPU seconds of each of `repeats` calls: on a machine shared with other work, a short call's wall-clock time
    is mostly the time it waited for a core (the loads run on one thread, torch.set_num_threads(1))."""
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return times


def load_row(path: Path, cls: type, repeats: int) -> dict:
    """One model's load times: SB3's and ours alternated, then ours in its parts."""
    from deeprl import sb3
    from deeprl.algos import get_algo
    from deeprl.envs import make_env

    def ours() -> None:
        sb3.load_sb3_agent(path)

    def theirs() -> None:
        cls.load(path, device="cpu")

    ours(), theirs()  # imports and first-call caches on both sides
    t_ours, t_theirs = [], []
    for _ in range(repeats):  # alternated, so a busy moment of the machine falls on both
        t_ours += timed(ours, 1)
        t_theirs += timed(theirs, 1)
    model = sb3.read_zip(path)
    env_id = sb3.resolve_env(model)
    config, tensors = sb3.to_deeprl(model, env_id)
    env_s = statistics.median(timed(lambda: make_env(env_id).close(), repeats))
    row = {
        "zip_bytes": path.stat().st_size,
        "sb3_load_s": statistics.median(t_theirs),
        "deeprl_load_s": statistics.median(t_ours),
        "deeprl_read_s": statistics.median(timed(lambda: sb3.read_zip(path), repeats)),
        "deeprl_env_check_s": statistics.median(timed(lambda: sb3.resolve_env(model), repeats)),
        "deeprl_build_s": statistics.median(
            timed(lambda: get_algo(config["algo"]).load_agent(config, tensors), repeats)
        ),
    }
    row["env_build_s"] = env_s
    row["ratio"] = row["deeprl_load_s"] / row["sb3_load_s"]
    # an SB3 user builds the env before evaluating; deeprl's agent has it checked and ready
    row["ratio_vs_sb3_load_and_env"] = row["deeprl_load_s"] / (row["sb3_load_s"] + env_s)
    return row


def part_a(folder: Path, repeats: int) -> dict:
    print(f"\n== (a) loading one SB3 zip: deeprl's loader vs SB3's own load (CPU time, median of {repeats}) ==")
    print(
        f"  {'model':<32} {'size':>8} {'SB3 load':>9} {'deeprl':>9} {'read':>8} {'check':>8} {'build':>8} "
        f"{'ratio':>6} {'env':>8} {'ratio+env':>9}"
    )
    rows = {}
    for name, (path, cls) in course_models(folder).items():
        rows[name] = r = load_row(path, cls, repeats)
        ms = {k: f"{v * 1e3:.1f}ms" for k, v in r.items() if k.endswith("_s")}
        print(
            f"  {name:<32} {r['zip_bytes'] / 1e6:6.2f}MB {ms['sb3_load_s']:>9} {ms['deeprl_load_s']:>9} "
            f"{ms['deeprl_read_s']:>8} {ms['deeprl_env_check_s']:>8} {ms['deeprl_build_s']:>8} "
            f"{r['ratio']:5.2f}x {ms['env_build_s']:>8} {r['ratio_vs_sb3_load_and_env']:8.2f}x"
        )
    print(
        "  ratio = deeprl / SB3 load; read = zip + JSON + weights_only torch.load; check = the spaces against the\n"
        "  course env (built once); build = our policy (deeprl builds the env once more for its spaces);\n"
        "  env = building the env once, which SB3's load without an env skips; ratio+env = deeprl / (SB3 load + env)"
    )
    return rows


def cartpole_zips(folder: Path) -> list[Path]:
    """A PPO, an A2C and a DQN on CartPole-v1, trained a few hundred steps by SB3."""
    from stable_baselines3 import A2C, DQN, PPO

    made = []
    for name, model, steps in (
        ("ppo-CartPole-v1", PPO("MlpPolicy", "CartPole-v1", n_steps=128, batch_size=64, n_epochs=2, seed=0), 256),
        ("a2c-CartPole-v1", A2C("MlpPolicy", "CartPole-v1", seed=0), 200),
        ("dqn-CartPole-v1", DQN("MlpPolicy", "CartPole-v1", learning_starts=100, buffer_size=2000, seed=0), 300),
    ):
        model.learn(steps)
        made.append(folder / f"{name}.zip")
        model.save(made[-1])
    return made


def course_repo(zip_path: Path) -> dict[str, bytes]:
    """The files package_to_hub pushes for one zip (the card `deeprl push MODEL.zip` writes, claiming 100 +/- 10)."""
    from deeprl.commands.push import repo_card

    name, raw = zip_path.stem, zip_path.read_bytes()
    files = {zip_path.name: raw, "replay.mp4": b"\0" * (1 << 20)}
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        files["config.json"] = zf.read("data")
        files.update({f"{name}/{m}": zf.read(m) for m in zf.namelist()})
    results = {"env_tag": "CartPole-v1", "mean_reward": 100.0, "std_reward": 10.0, "n_eval_episodes": 10}
    files["README.md"] = repo_card(f"x/{name}", zip_path.name, name.split("-")[0], results, True, "hf").encode()
    files["results.json"] = json.dumps(results).encode()
    return files


def part_b(folder: Path, n_repos: int, workers: int | None) -> dict:
    from deeprl import db
    from deeprl.dispatch import DispatchOptions, cores
    from deeprl.leaderboard import index, ranking
    from deeprl.leaderboard.indexer import Listing
    from hf_standin import StandIn

    templates = [course_repo(z) for z in cartpole_zips(folder)]
    with StandIn(token="bench") as hub:
        for i in range(n_repos):
            files = templates[i % len(templates)]
            zip_name = next(n for n in files if n.endswith(".zip") and "/" not in n)
            hub.add_repo(f"learner{i:03d}/{zip_name[:-4]}", files)
        os.environ.update(HF_ENDPOINT=hub.url, HF_TOKEN="bench", HF_HUB_CACHE=str(folder / "hf-cache"))
        import huggingface_hub.constants as hc

        hc.ENDPOINT, hc.HUGGINGFACE_CO_URL_TEMPLATE = hub.url, hub.url + "/{repo_id}/resolve/{revision}/{filename}"
        dispatch = DispatchOptions(workers=workers) if workers else None
        t = time.perf_counter()
        report = index("hf", listing=Listing(filters=("deep-rl-course",)), dispatch=dispatch)
        wall = time.perf_counter() - t
        fetched = sum(1 for verb, path in hub.store.requests if verb == "GET" and "/resolve/" in path)
    with db.session() as s:
        rows = ranking(s, "CartPole-v1", hub="hf")[0]
        seconds = [e.seconds for e in s.query(db.Evaluation).all() if e.seconds is not None]
    used = workers or cores()
    out = {
        "repos": n_repos,
        "listed": report.listed,
        "evaluated": report.evaluated,
        "ranked": len(rows),
        "errors": len(report.errors),
        "workers": used,
        "wall_s": wall,
        "wall_per_model_s": wall / max(1, report.evaluated),
        "child_median_s": statistics.median(seconds) if seconds else None,
        "child_total_s": sum(seconds),
        "files_downloaded": fetched,
    }
    print(f"\n== (b) deeprl index --hub hf --filter deep-rl-course over {n_repos} SB3 repos in the stand-in Hub ==")
    print(f"  listed {out['listed']}, evaluated {out['evaluated']}, ranked {out['ranked']}, errors {out['errors']}")
    print(f"  wall-clock {wall:.1f} s with {used} workers: {out['wall_per_model_s']:.2f} s per model")
    print(
        f"  one model's evaluation child: median {out['child_median_s']:.2f} s "
        f"(a fresh limited process: python + torch + the env + 10 episodes)"
    )
    print(f"  files downloaded: {fetched} (the zip and the card of each; no replay, config.json or unzipped copy)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--repos", type=int, default=100)
    ap.add_argument("--workers", type=int, default=None, help="evaluations at once (default: the cores)")
    ap.add_argument("--only", choices=["load", "index"], default=None, help="run one part (the JSON keeps the other)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # others work on this machine too; small networks run fastest on one thread anyway
    out = ROOT / "benchmarks" / "results" / "bench_sb3.json"
    results = json.loads(out.read_text()) if args.only and out.is_file() else {}
    with tempfile.TemporaryDirectory(prefix="bench-sb3-") as tmp:
        os.environ["DEEPRL_HOME"] = str(Path(tmp) / "home")  # its own hub and database, never the user's
        (Path(tmp) / "a").mkdir()
        (Path(tmp) / "b").mkdir()
        if args.only in (None, "load"):
            results["load"] = part_a(Path(tmp) / "a", args.repeats)
        if args.only in (None, "index"):
            results["index"] = part_b(Path(tmp) / "b", args.repos, args.workers)
    results["machine"] = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
