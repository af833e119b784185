import json

import numpy as np
import pytest

from deeprl.algos import selfplay
from deeprl.errors import UserError

TINY = {
    "n_envs": 4,
    "n_steps": 16,
    "batch_size": 64,
    "hidden_units": 16,
    "num_layers": 1,
    "save_steps": 128,
    "swap_steps": 64,
    "team_change": 256,
    "checkpoint_every": 256,
    "ball_progress": 1.0,
    "ball_touch": 0.1,
    "ball_approach": 0.5,
}


def _hp(**kw):
    return selfplay.Settings(**kw)


def test_snapshots_swaps_and_team_changes_follow_the_schedule():
    sp = selfplay.SelfPlay(
        _hp(save_steps=100, swap_steps=30, team_change=250, window=3, play_against_latest_model_ratio=0.5),
        np.random.default_rng(0),
    )
    snaps, swaps, sides = [], [], []
    weights = lambda: {"w": np.zeros(1)}  # noqa: E731
    for step in range(10, 1001, 10):
        if sp.maybe_snapshot(step, weights):
            snaps.append(step)
        if sp.maybe_swap(step, weights) is not None:
            swaps.append(step)
        if step % 50 == 0 and sp.maybe_change_team(step):  # the trainer asks at rollout boundaries only
            sides.append((step, sp.learning_side))
    assert snaps == list(range(100, 1001, 100))
    assert len(sp.pool) == 3 and [p["step"] for p in sp.pool] == [800, 900, 1000]
    assert swaps == list(range(30, 1001, 30))
    assert sides == [(250, 1), (500, 0), (750, 1), (1000, 0)]
    assert sp.n_swaps == len(swaps) and sp.n_team_changes == 4


@pytest.mark.parametrize("ratio, latest", [(1.0, True), (0.0, False)])
def test_play_against_latest_model_ratio(ratio, latest):
    sp = selfplay.SelfPlay(
        _hp(save_steps=10, swap_steps=10, window=5, play_against_latest_model_ratio=ratio), np.random.default_rng(1)
    )
    current = {"w": np.ones(1)}
    sp.maybe_snapshot(10, lambda: {"w": np.zeros(1)})
    got = sp.maybe_swap(10, lambda: current)
    assert (got is current) == latest
    assert (sp.opponent == -1) == latest


def test_elo_moves_between_learner_and_ghost():
    sp = selfplay.SelfPlay(_hp(initial_elo=1200, elo_k=16), np.random.default_rng(0))
    sp.maybe_snapshot(10**6, lambda: {"w": np.zeros(1)})
    sp.opponent = 0
    change = sp.record(1.0)
    assert change == pytest.approx(8.0)
    assert sp.elo == pytest.approx(1208) and sp.pool[0]["elo"] == pytest.approx(1192)
    sp.opponent, sp.latest_elo = -1, sp.elo
    sp.record(0.5)
    assert sp.elo == pytest.approx(1208)
    state = json.loads(json.dumps(sp.state()))
    again = selfplay.SelfPlay(_hp(), np.random.default_rng(0))
    again.load_state(state, sp.pool_tensors())
    assert again.state() == sp.state()


def test_own_goal_blames_the_player_with_the_last_touch():
    last = np.zeros((3, 2), dtype=bool)
    no = np.zeros(3, dtype=bool)

    def step(mine, any_, conceded=no, finished=no):
        return selfplay.own_goal_blame(
            last, np.array(mine, bool), np.array(any_, bool), np.array(conceded, bool), np.array(finished, bool)
        )

    # match 0: our player 1 touches, then nobody; match 1: ours, then an opponent; match 2: nobody ever
    assert not step([[0, 1], [1, 0], [0, 0]], [1, 1, 0]).any()
    assert not step([[0, 0], [0, 0], [0, 0]], [0, 1, 0]).any()
    blamed = step([[0, 0], [0, 0], [0, 0]], [0, 0, 0], conceded=[1, 1, 1], finished=[1, 1, 1])
    assert blamed.tolist() == [[False, True], [False, False], [False, False]]
    assert not last.any()  # the next kick-off starts with no one to blame
    # both our players in the last touch: both blamed; a touch in the goal's own step counts
    blamed = step([[1, 1], [1, 0], [0, 0]], [1, 1, 0], conceded=[1, 0, 0], finished=[1, 0, 0])
    assert blamed.tolist() == [[True, True], [False, False], [False, False]]
    assert last.tolist() == [[False, False], [True, False], [False, False]]


def test_bad_self_play_settings_are_user_errors():
    with pytest.raises(UserError):
        selfplay.SelfPlay(_hp(window=0), np.random.default_rng(0))
    with pytest.raises(UserError):
        selfplay.SelfPlay(_hp(play_against_latest_model_ratio=1.5), np.random.default_rng(0))


def test_train_save_load_resume_and_play(tmp_path, cli):
    from deeprl.agent import load_agent
    from deeprl.checkpoint import load_checkpoint
    from deeprl.evaluation import evaluate
    from deeprl.train import train

    run = train(
        "selfplay",
        "SoccerTwos",
        overrides=TINY,
        n_timesteps=512,
        seed=3,
        log_folder=tmp_path,
        env_kwargs={"max_steps": 40},
        device="cpu",
        show_progress=False,
    )
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["trained"]["timesteps"] == 512 and config["env_tag"] == "ML-Agents-SoccerTwos"
    tensors, state = load_checkpoint(run.run_dir)
    assert state["self_play"]["n_swaps"] == 512 // 64 and len(state["self_play"]["pool"]) == 4
    assert state["self_play"]["learning_side"] == 1  # one side change at 256 steps

    agent = load_agent(run.run_dir)
    assert agent.act(np.zeros(336, np.float32)).shape == (3,)
    assert agent.act(np.zeros((2, 336), np.float32), deterministic=False).shape == (2, 3)
    result = evaluate(agent, n_eval_episodes=2)
    assert result["env_tag"] == "ML-Agents-SoccerTwos" and result["n_eval_episodes"] == 2

    again = train(
        "selfplay",
        "SoccerTwos",
        overrides=TINY,
        n_timesteps=512,
        seed=3,
        log_folder=tmp_path / "b",
        env_kwargs={"max_steps": 40},
        device="cpu",
        show_progress=False,
    )
    a, b = (load_agent(r.run_dir).actor.state_dict() for r in (run, again))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)  # same seed, same weights

    resumed = train(
        "selfplay", "SoccerTwos", n_timesteps=768, log_folder=tmp_path, resume=True, device="cpu", show_progress=False
    )
    assert resumed.run_dir == run.run_dir
    assert json.loads((run.run_dir / "config.json").read_text())["trained"]["timesteps"] == 768

    p = cli("match", run.run_dir, "random", "--n-matches", "2", "--max-steps", "30", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["wins"] + out["draws"] + out["losses"] == 2
    assert out["elo"]["a_change"] == pytest.approx(-out["elo"]["b_change"])
    video = tmp_path / "m.mp4"
    p = cli("match", "scripted", run.run_dir, "--n-matches", "1", "--max-steps", "20", "--record", video)
    assert p.returncode == 0, p.stderr
    assert "wins" in p.stdout and video.stat().st_size > 0


def test_centralized_critic_and_fixed_opponents(tmp_path):
    from deeprl.agent import load_agent
    from deeprl.checkpoint import load_checkpoint
    from deeprl.train import train

    hp = TINY | {"centralized_critic": True, "scripted_opponent_ratio": 1.0, "own_goal": 1.0}
    run = train(
        "selfplay",
        "SoccerTwos",
        overrides=hp,
        n_timesteps=512,
        seed=3,
        log_folder=tmp_path,
        env_kwargs={"max_steps": 40},
        device="cpu",
        show_progress=False,
    )
    tensors, state = load_checkpoint(run.run_dir)
    assert tensors["critic.0.weight"].shape[1] == 2 * 336  # the critic reads both teammates
    assert tensors["actor.0.weight"].shape[1] == 336
    assert state["self_play"]["elo"] == 1200.0  # every match was against the scripted team: no Elo change
    assert load_agent(run.run_dir).act(np.zeros((2, 336), np.float32)).shape == (2, 3)
    resumed = train(
        "selfplay", "SoccerTwos", n_timesteps=640, log_folder=tmp_path, resume=True, device="cpu", show_progress=False
    )
    assert json.loads((resumed.run_dir / "config.json").read_text())["trained"]["timesteps"] == 640
    with pytest.raises(UserError):
        train(
            "selfplay",
            "SoccerTwos",
            overrides=TINY | {"scripted_opponent_ratio": 0.7, "random_opponent_ratio": 0.5},
            n_timesteps=64,
            log_folder=tmp_path / "bad",
            device="cpu",
            show_progress=False,
        )


def test_selfplay_refuses_single_agent_envs(tmp_path):
    from deeprl.train import train

    with pytest.raises(UserError):
        train(
            "selfplay",
            "CartPole-v1",
            overrides=TINY,
            n_timesteps=64,
            log_folder=tmp_path,
            device="cpu",
            show_progress=False,
        )


def test_match_refuses_non_soccer_models_and_bad_counts(cli):
    p = cli("match", "scripted", "random", "--n-matches", "0")
    assert p.returncode == 2 and "--n-matches" in p.stderr
    p = cli("match", "scripted", "nowhere/at-all")
    assert p.returncode == 2
