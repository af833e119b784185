"""ViZDoom (Unit 8.2) as Sample Factory trains it: spaces, frameskip, the shaped reward, the unshaped return that
evaluation reports, seeds, headless replays, and no engine process left behind."""

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("vizdoom")

from deeprl.envs import get_spec, make_env  # noqa: E402
from deeprl.evaluation import evaluate  # noqa: E402

SUPREME = "doom_health_gathering_supreme"
FORWARD, TURN_RIGHT = 3, 2  # 0 no-op, then TURN_LEFT, TURN_RIGHT, MOVE_FORWARD, MOVE_BACKWARD
SCRIPT_SEED = 2  # on this seed the script below walks over one medkit before the acid kills it


def _script(t: int) -> int:
    return FORWARD if t % 8 else TURN_RIGHT


def _children() -> set[int]:
    """Live child processes of this one (ViZDoom's engine runs as one)."""
    pid = os.getpid()
    if not Path(f"/proc/{pid}/task").is_dir():
        pytest.skip("counting child processes reads /proc (Linux)")
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if Path(f"/proc/{child}/stat").exists():
                state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    out.add(int(child))
    return out


def _play(env, seed, policy=_script):
    obs, info = env.reset(seed=seed)
    steps = [(obs, 0.0, info)]
    t = 0
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(t))
        t += 1
        steps.append((obs, reward, info))
        if terminated or truncated:
            return steps, terminated, truncated


class RandomAgent:
    """The smallest agent evaluation takes: uniform random actions from its own seeded generator."""

    def __init__(self, env_id, seed=0):
        self.env_id, self.env_kwargs = env_id, {}
        self.rng = np.random.default_rng(seed)
        self.n = make_env(env_id).action_space.n

    def act(self, obs, deterministic=False):
        assert obs.shape == (72, 128, 3) and obs.dtype == np.uint8
        return int(self.rng.integers(self.n))


def test_spaces_frames_and_frameskip():
    train, evaluation = make_env(SUPREME, training=True), make_env(SUPREME, render_mode="rgb_array")
    try:
        for env in (train, evaluation):
            assert env.action_space.n == 5  # a no-op plus one of four buttons at a time
            assert env.observation_space.shape == (72, 128, 3) and env.observation_space.dtype == np.uint8
            obs, info = env.reset(seed=0)
            assert env.observation_space.contains(obs) and 0 < info["HEALTH"] <= 100
        assert train.unwrapped.frame_skip == 4 and evaluation.unwrapped.frame_skip == 1
        # 0.01 a tic alive: 4 tics a training step, 1 an evaluation step
        assert train.step(0)[1] == pytest.approx(0.04) and evaluation.step(0)[1] == pytest.approx(0.01)
        frame = evaluation.render()
        assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8 and frame.any()
        # replays play at the game's 35 fps (35/4 when a run records its frameskip-4 steps)
        assert evaluation.metadata["render_fps"] == 35 and train.metadata["render_fps"] == 35 / 4
    finally:
        train.close()
        evaluation.close()


def test_shaped_reward_and_unshaped_return_on_a_scripted_episode():
    """Training adds +1 on each step where health rises; the unshaped return (0.01 a tic survived) is what
    info['true_objective'], info['episode'] and evaluation report."""
    shaped_env = make_env(SUPREME, training=True)
    plain_env = make_env(SUPREME, {"frame_skip": 4}, training=False)  # same dynamics, no shaping
    try:
        shaped, terminated, truncated = _play(shaped_env, SCRIPT_SEED)
        plain, _, _ = _play(plain_env, SCRIPT_SEED)
        tics = shaped_env.unwrapped.game.get_episode_time()
    finally:
        shaped_env.close()
        plain_env.close()
    assert terminated and not truncated  # the acid floor kills a wandering agent: death is a real end
    assert len(shaped) == len(plain)
    health = [info["HEALTH"] for _, _, info in plain]
    pickups = 0
    for t in range(1, len(plain)):
        bonus = shaped[t][1] - plain[t][1]
        # SF's rule: the first step only records the health, and the last step (the death) earns nothing
        rose = 1 < t < len(plain) - 1 and health[t] > health[t - 1]
        assert bonus == pytest.approx(1.0 if rose else 0.0), t
        pickups += rose
    assert pickups >= 1
    unshaped = sum(r for _, r, _ in plain)
    n = len(plain) - 1
    assert 0.04 * (n - 1) < unshaped <= 0.04 * n + 1e-9 and unshaped == pytest.approx(0.01 * (tics - 1))
    final = shaped[-1][2]
    assert final["true_objective"] == pytest.approx(unshaped)
    assert final["episode"]["r"] == pytest.approx(unshaped)
    assert sum(r for _, r, _ in shaped) == pytest.approx(unshaped + pickups)


def test_evaluate_runs_a_random_agent_on_the_unshaped_return():
    before = _children()
    figures = evaluate(RandomAgent(SUPREME), n_eval_episodes=2, seed=5)
    assert figures["env_id"] == SUPREME and figures["n_eval_episodes"] == 2
    assert figures["is_deterministic"] is False  # sampled actions, as SF's enjoy scores the course's models
    for ret, length in zip(figures["episode_rewards"], figures["episode_lengths"]):
        # frameskip 1 at evaluation: a step is a tic, and each tic alive is worth 0.01 (at most 21)
        assert ret == pytest.approx(0.01 * length) and 0 < ret <= 21.0
    assert figures["result"] == pytest.approx(figures["mean_reward"] - figures["std_reward"])
    assert _children() <= before  # evaluate closed its env and the engine went with it


def test_seeds_replay_exactly_and_differ_between_seeds():
    env = make_env(SUPREME, training=True)
    try:
        rng_policy = np.random.default_rng(0).integers(5, size=3000)
        a, _, _ = _play(env, 7, policy=lambda t: rng_policy[t])
        b, _, _ = _play(env, 7, policy=lambda t: rng_policy[t])
        c, _, _ = _play(env, 8, policy=lambda t: rng_policy[t])
        # reset() without a seed draws the next episode's seed from the env's generator: reproducible too
        env.reset(seed=3)
        d = _play(env, None, policy=lambda t: rng_policy[t])[0]
        env.reset(seed=3)
        e = _play(env, None, policy=lambda t: rng_policy[t])[0]
    finally:
        env.close()
    assert len(a) == len(b) and all((x[0] == y[0]).all() and x[1] == y[1] for x, y in zip(a, b))
    assert len(a) != len(c) or any((x[0] != y[0]).any() for x, y in zip(a, c))
    assert len(d) == len(e) and all((x[0] == y[0]).all() for x, y in zip(d, e))


def test_close_leaves_no_process_and_nothing_in_the_working_directory(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    before = _children()
    env = make_env(SUPREME)
    assert _children() == before  # the engine starts on the first reset, not when an env is only built
    env.reset(seed=0)
    assert len(_children() - before) == 1
    env.step(0)
    env.close()
    env.close()  # twice is harmless
    assert _children() <= before
    assert list(tmp_path.iterdir()) == []  # the engine's _vizdoom.ini and _vizdoom/ went to a scratch folder
    assert capfd.readouterr().out == ""  # nothing on stdout, which `--json` owns


def test_timeout_is_a_truncation():
    env = make_env("doom_basic")  # 300 tics, and a no-op never kills the monster
    try:
        steps, terminated, truncated = _play(env, 0, policy=lambda t: 0)
    finally:
        env.close()
    assert truncated and not terminated and len(steps) - 1 == 300
    assert sum(r for _, r, _ in steps) == pytest.approx(-300.0)  # basic's living reward -1, unscaled at evaluation


def test_replay_video_at_35_fps(tmp_path):
    import imageio_ffmpeg

    from deeprl.video import record

    out = tmp_path / "replay.mp4"
    info = record(RandomAgent(SUPREME), out)
    assert info["fps"] == 35 and info["frames"] > 100 and out.stat().st_size > 0
    meta = imageio_ffmpeg.read_frames(str(out)).__next__()
    assert meta["size"] == (160, 120) and meta["fps"] == 35


def test_registry_entries():
    supreme = get_spec(SUPREME)
    assert supreme.unit == "8.2" and supreme.requires == "vizdoom" and supreme.n_eval_episodes == 10
    assert supreme.card_tag() == SUPREME and not supreme.deterministic
    for other in ("doom_health_gathering", "doom_basic", "doom_defend_the_center"):
        spec = get_spec(other)
        assert spec.unit == "-" and spec.requires == "vizdoom"
        env = make_env(other, training=True)
        try:
            obs, _ = env.reset(seed=0)
            assert obs.shape == (72, 128, 3) and env.action_space.n == 4 + (other == "doom_health_gathering")
        finally:
            env.close()


def test_unknown_kwarg_is_one_sentence():
    from deeprl.errors import UserError

    with pytest.raises(UserError, match="frameskip"):
        make_env(SUPREME, {"frameskip": 2})


def test_appo_course_workflow_train_enjoy_evaluate_push_rank(tmp_path, cli):
    """Unit 8.2 command for command: train with APPO, enjoy, evaluate (10 episodes, unshaped), push with the
    replay, and the leaderboard re-evaluates and ranks the pushed agent (a tiny run: the figures are not the point)."""
    import json

    small = ["num_workers:2", "num_envs_per_worker:2", "rollout:16", "batch_size:64", "rnn_size:32"]
    proc = cli("train", "--algo", "appo", "--env", SUPREME, "-f", tmp_path / "logs", "-n", "1024", "--quiet",
               "--hyperparams", *small)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "logs" / "appo" / f"{SUPREME}_1"
    config = json.loads((run / "config.json").read_text())
    assert config["algo"] == "appo" and config["policy"]["frame_skip"] == 4
    assert config["trained"]["env_frames"] >= 1024  # frames: 4 per decision
    proc = cli("enjoy", "--algo", "appo", "--env", SUPREME, "-f", tmp_path / "logs", "--no-render", "-n", "200")
    assert proc.returncode == 0, proc.stderr
    proc = cli("evaluate", run)
    assert proc.returncode == 0, proc.stderr
    assert "10 episodes, sampled actions" in proc.stdout
    proc = cli("push", run, "--repo-id", "alice/rl_course_vizdoom_health_gathering_supreme")
    assert proc.returncode == 0, proc.stderr
    from deeprl.hub import resolve_repo

    repo = resolve_repo("alice/rl_course_vizdoom_health_gathering_supreme")
    assert (repo / "replay.mp4").stat().st_size > 1000
    assert cli("index").returncode == 0
    board = cli("leaderboard", "--env", SUPREME, "--json")
    assert board.returncode == 0, board.stderr
    rows = json.loads(board.stdout)
    rows = rows if isinstance(rows, list) else rows.get("rows", rows.get(SUPREME, []))
    assert any("rl_course_vizdoom_health_gathering_supreme" in json.dumps(r) for r in rows), board.stdout


def test_appo_ctrl_c_leaves_no_worker_and_no_engine(tmp_path):
    """Ctrl-C reaches the trainer, its rollout workers and their ViZDoom engine processes: none is left."""
    import json
    import signal

    from proc_helpers import left_behind, start_training, wait_for_checkpoint

    small = ["num_workers:2", "num_envs_per_worker:2", "rollout:16", "batch_size:64", "rnn_size:32"]
    proc = start_training(tmp_path, SUPREME, [*small, "checkpoint_seconds:0.2"])
    try:
        run, kids = wait_for_checkpoint(proc, tmp_path, workers=6)  # two workers and their four engines
        engines = [k for k in kids if "vizdoom" in Path(f"/proc/{k}/cmdline").read_text()]
        assert engines
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Traceback" not in err, err
    assert json.loads((run / "config.json").read_text())["status"] == "stopped"
    assert left_behind(kids) == []
