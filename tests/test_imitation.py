"""Bonus 5: trajectory datasets, record-demo's keyboard, behaviour cloning and GAIL."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from deeprl import datasets
from deeprl.agent import load_agent
from deeprl.algos import bc, gail
from deeprl.cli import main
from deeprl.commands import record_demo
from deeprl.errors import UserError
from deeprl.evaluation import evaluate
from deeprl.policies import build_policy
from deeprl.train import train
from demo_helpers import cartpole_demos

CARTPOLE_SPACES = datasets.space_info(gym.spaces.Box(-np.inf, np.inf, (4,)), gym.spaces.Discrete(2))


class Random:
    env_id, env_kwargs, config = "CartPole-v1", {}, {}

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def act(self, obs, deterministic=True):
        return int(self.rng.integers(2))


@pytest.fixture(scope="module")
def expert_demos(tmp_path_factory):
    return cartpole_demos(tmp_path_factory.mktemp("demos") / "cartpole", 4)


def _trajectory(n, rng, box_actions=False):
    return datasets.Trajectory(
        observations=rng.normal(size=(n, 4)).astype(np.float32),
        actions=rng.normal(size=(n, 2)).astype(np.float32) if box_actions else rng.integers(2, size=n),
        rewards=rng.normal(size=n).astype(np.float32),
        dones=np.arange(n) == n - 1,
    )


# --------------------------------------------------------------------------------------------------------------
# the dataset format


def test_trajectories_round_trip_write_append_read(tmp_path):
    rng = np.random.default_rng(0)
    first, second = [_trajectory(5, rng), _trajectory(3, rng)], [_trajectory(7, rng)]
    datasets.write(tmp_path / "d", first, env_id="CartPole-v1", spaces=CARTPOLE_SPACES, source="test")
    datasets.append(tmp_path / "d", second, env_id="CartPole-v1", spaces=CARTPOLE_SPACES, source="more")
    back = datasets.read(tmp_path / "d")
    assert back.env_id == "CartPole-v1" and len(back.trajectories) == 3
    for want, got in zip(first + second, back.trajectories, strict=True):
        for column in datasets.COLUMNS:
            a, b = getattr(want, column), getattr(got, column)
            assert np.array_equal(np.asarray(a), b) and b.shape[0] == len(want), column
    assert back.trajectories[0].actions.dtype == np.int64 and back.trajectories[0].observations.dtype == np.float32
    obs, actions = back.transitions()
    assert obs.shape == (15, 4) and actions.shape == (15,)
    assert back.summary()["episodes"] == 3 and back.summary()["steps"] == 15
    # the Hub's layout: `datasets.load_dataset(DIR)` finds the shards and the course's four columns
    import datasets as hf

    hub = hf.load_dataset(str(tmp_path / "d"), split="train", cache_dir=str(tmp_path / "cache"))
    assert hub.num_rows == 3 and set(hub.column_names) == set(datasets.COLUMNS)
    again = datasets.trajectories(hub)  # a Hub dataset of the same columns reads as the same trajectories
    assert np.array_equal(again[2].observations, back.trajectories[2].observations)
    assert np.array_equal(again[2].actions, back.trajectories[2].actions) and again[2].actions.dtype == np.int64


def test_box_actions_round_trip_and_wrong_appends_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    spaces = datasets.space_info(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Box(-1, 1, (2,)))
    episodes = [_trajectory(4, rng, box_actions=True)]
    datasets.write(tmp_path / "d", episodes, env_id="LunarLander-v2", spaces=spaces, source="test")
    got = datasets.read(tmp_path / "d").trajectories[0]
    assert got.actions.shape == (4, 2) and np.array_equal(got.actions, episodes[0].actions)
    with pytest.raises(UserError, match="holds a dataset already"):
        datasets.write(tmp_path / "d", episodes, env_id="LunarLander-v2", spaces=spaces, source="again")
    with pytest.raises(UserError, match="another folder"):
        datasets.append(tmp_path / "d", episodes, env_id="CartPole-v1", spaces=CARTPOLE_SPACES, source="other env")
    with pytest.raises(UserError, match="not a trajectory dataset"):
        datasets.read(tmp_path)
    with pytest.raises(UserError, match="vector observations"):
        datasets.space_info(gym.spaces.Discrete(4), gym.spaces.Discrete(2))


def test_agent_episodes_follow_the_evaluation_protocol(tmp_path):
    trajectories, info = datasets.agent_episodes(Random(), 3, seed=5)
    assert info["env_id"] == "CartPole-v1" and len(trajectories) == 3
    for t in trajectories:
        # terminated by the pole, in the obs/action/reward/done layout: the last step is the termination
        assert t.dones[-1] and not t.dones[:-1].any() and len(t.observations) == len(t.actions) == len(t)
        assert t.episode_return == len(t)
    first_obs, _ = gym.make("CartPole-v1").reset(seed=5)
    assert np.allclose(trajectories[0].observations[0], first_obs)


# --------------------------------------------------------------------------------------------------------------
# record-demo: keyboard -> actions, driven by scripted key events


def test_keys_map_to_actions():
    lander = record_demo.KEYMAPS["LunarLander-v2"]
    held = frozenset()
    script = [("down", "left"), ("down", "up"), ("up", "up"), ("up", "left"), ("down", "d"), ("up", "d")]
    actions = []
    for event in script:
        held = record_demo.press(held, event)
        actions.append(record_demo.action_for(lander, held))
    # left engine; main engine wins over a side one; left again; nothing: noop; D is Right; nothing
    assert actions == [1, 2, 1, 0, 3, 0]
    cartpole = record_demo.KEYMAPS["CartPole-v1"]
    assert record_demo.action_for(cartpole, set()) is None  # no noop in CartPole: time waits for a key
    assert record_demo.action_for(cartpole, {"right"}) == 1
    assert record_demo.wants_quit(("down", "escape")) and record_demo.wants_quit(("quit", ""))


class ScriptedWindow:
    """record_demo.Window with no screen: each episode's scripted key events, one batch per frame."""

    def __init__(self, scripts):
        self.scripts, self.batches, self.frames, self.ticks = list(scripts), [], 0, 0

    def events(self):
        return self.batches.pop(0) if self.batches else []

    def show(self, frame, caption):
        assert frame.ndim == 3
        self.frames += 1
        if ": " in caption and self.scripts:  # an episode starts (its caption says the controls)
            self.batches = list(self.scripts.pop(0))

    def tick(self, fps):
        self.ticks += 1


def test_played_episodes_are_saved_as_trajectories(tmp_path):
    env = datasets.Recorder(gym.make("CartPole-v1", render_mode="rgb_array"))
    # hold Right until the pole falls; then Left through the second episode; Esc in the third
    window = ScriptedWindow([[[("down", "right")]], [[("up", "right"), ("down", "left")]], [[("down", "escape")]]])
    episodes = record_demo.play(env, record_demo.KEYMAPS["CartPole-v1"], window, 5, seed=3)
    assert len(episodes) == 2  # Esc stopped the third; the finished two are kept
    assert set(episodes[0].actions) == {1} and set(episodes[1].actions) == {0}
    assert all(e.dones[-1] for e in episodes) and window.frames > len(episodes[0]) + len(episodes[1])
    datasets.write(tmp_path / "d", episodes, env_id="CartPole-v1", spaces=CARTPOLE_SPACES, source="keyboard")
    assert datasets.read(tmp_path / "d").summary()["episodes"] == 2


def test_an_episode_waits_for_the_first_key():
    env = datasets.Recorder(gym.make("LunarLander-v3", render_mode="rgb_array"))
    # five frames with no key: nothing moves; then a key with no binding starts the episode on noops until it lands
    # or crashes; Esc in the next
    window = ScriptedWindow([[[]] * 5 + [[("down", "x")]], [[("down", "escape")]]])
    (episode,) = record_demo.play(env, record_demo.KEYMAPS["LunarLander-v2"], window, 3, seed=0)
    assert set(episode.actions) == {0} and episode.dones[-1]
    assert window.ticks == 5 + len(episode)  # the frames it waited, then one a step


def test_record_demo_without_a_display_is_one_sentence(tmp_path, monkeypatch, capsys):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(record_demo.sys, "platform", "linux")
    assert main(["record-demo", "--env", "LunarLander-v2", "-o", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "needs a display" in err and err.count("\n") == 1
    assert main(["record-demo", "--env", "Taxi-v3", "-o", str(tmp_path / "d")]) == 2
    assert "no keyboard controls" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------------
# behaviour cloning


def test_bc_copies_a_separable_demonstrator(tmp_path):
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(400, 4)).astype(np.float32)
    label = (obs[:, 0] > 0).astype(np.int64)  # the action is the sign of the first coordinate
    episodes = [
        datasets.Trajectory(obs[i : i + 100], label[i : i + 100], np.ones(100, np.float32), np.zeros(100, bool))
        for i in range(0, 400, 100)
    ]
    datasets.write(tmp_path / "sep", episodes, env_id="CartPole-v1", spaces=CARTPOLE_SPACES, source="test")
    run = train(
        "bc",
        "CartPole-v1",
        overrides={"demos": str(tmp_path / "sep"), "n_epochs": 30, "learning_rate": 3e-3},
        log_folder=tmp_path / "logs",
        show_progress=False,
        device="cpu",
    )
    agent = load_agent(run.run_dir)
    test_obs = rng.normal(size=(200, 4)).astype(np.float32)
    copied = np.array([agent.act(o) for o in test_obs])
    assert (copied == (test_obs[:, 0] > 0)).mean() > 0.95
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["algo"] == "bc" and config["trained"]["demo_episodes"] == 4


def test_bc_regresses_box_actions():
    torch.manual_seed(0)
    policy = build_policy(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-1, 1, (2,)), {})
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    obs = torch.randn(256, 3)
    target = torch.stack([obs[:, 0], -obs[:, 1]], 1) * 0.5
    for _ in range(300):
        loss, info = bc.bc_loss(policy, obs, target, 0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(info["mse"]) < 0.01
    assert torch.allclose(policy.action(obs[:5], deterministic=True), target[:5], atol=0.15)


def test_bc_and_gail_refuse_missing_or_mismatched_demos(tmp_path, expert_demos):
    with pytest.raises(UserError, match="needs demonstrations"):
        train("bc", "CartPole-v1", log_folder=tmp_path, show_progress=False, device="cpu")
    with pytest.raises(UserError, match="does not match"):
        train("gail", "Acrobot-v1", overrides={"demos": str(expert_demos)}, log_folder=tmp_path, show_progress=False)
    assert not list(tmp_path.glob("*/*"))  # refused runs leave no folder behind


def test_dataset_commands_from_a_trained_model(tmp_path, expert_demos, capsys):
    run = train(
        "bc",
        "CartPole-v1",
        overrides={"demos": str(expert_demos), "n_epochs": 3},
        log_folder=tmp_path / "logs",
        show_progress=False,
        device="cpu",
    )
    out = tmp_path / "from-bc"
    assert main(["dataset", "make", "--from", str(run.run_dir), "--episodes", "2", "-o", str(out), "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["episodes"] == 2 and made["env_id"] == "CartPole-v1"
    assert main(["dataset", "make", "--from", str(run.run_dir), "--episodes", "1", "-o", str(out), "--append"]) == 0
    capsys.readouterr()
    assert main(["dataset", "show", str(out)]) == 0
    assert "3 episodes" in capsys.readouterr().out
    assert main(["dataset", "make", "--from", str(run.run_dir), "--episodes", "1", "-o", str(out)]) == 2
    assert "--append" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------------
# GAIL


def test_gail_discriminator_separates_expert_from_random(expert_demos):
    torch.manual_seed(0)
    demos = datasets.read(expert_demos)
    disc = gail.Discriminator(demos, gym.spaces.Discrete(2), [64, 64], 1e-3)
    randoms, _ = datasets.agent_episodes(Random(), 30, seed=100)
    generator = datasets.TrajectoryDataset(randoms).transitions()
    expert = demos.transitions()
    stats = disc.update(expert, generator, 300, 128, np.random.default_rng(0))
    assert stats["disc/expert_accuracy"] > 0.8 and stats["disc/generator_accuracy"] > 0.8, stats
    # the reward -log(1 - D) pays the demonstrator's pairs more than a random policy's
    assert disc.reward(*expert).mean() > 2 * disc.reward(*generator).mean()


def test_gail_trains_ppo_on_the_discriminator_reward(tmp_path, expert_demos):
    run = train(
        "gail",
        "CartPole-v1",
        overrides={"demos": str(expert_demos), "n_disc_updates_per_round": 4, "demo_batch_size": 64},
        n_timesteps=2048,
        log_folder=tmp_path,
        show_progress=False,
        device="cpu",
    )
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["algo"] == "gail" and config["trained"]["timesteps"] == 2048
    agent = load_agent(run.run_dir)
    assert evaluate(agent, n_eval_episodes=2)["n_eval_episodes"] == 2
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.run_dir / "tb"))
    events.Reload()
    assert {"disc/loss", "gail/reward_mean"} <= set(events.Tags()["scalars"])
    # pushed as any course model: a card that names the algorithm and its evaluation, a replay, loadable again
    from deeprl.hub import resolve_repo
    from deeprl.publish import push_model

    out = push_model(run.run_dir, "alice/gail-CartPole-v1", n_eval_episodes=2)
    repo = resolve_repo("alice/gail-CartPole-v1")
    card = (repo / "README.md").read_text()
    assert "gail" in card.lower() and "mean_reward" in card and (repo / "replay.mp4").stat().st_size > 1000
    again = evaluate(load_agent("alice/gail-CartPole-v1"), n_eval_episodes=2)
    assert again["mean_reward"] == pytest.approx(out["results"]["mean_reward"])
