"""Our arena envs vectorized natively: every arena in one core, finished arenas reset in the same step."""

import numpy as np

from deeprl.envs.arena import ArenaVectorEnv
from deeprl.envs.vector import make_vec_env


def test_snowball_native_vector_resets_in_the_same_step():
    venv = make_vec_env("SnowballTarget", 3, seed=0, vectorization="native", env_kwargs={})
    assert isinstance(venv, ArenaVectorEnv)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (3, 137) and venv.single_action_space.shape == (2,)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(1001):  # one episode is 1,000 decisions
        obs, reward, terminated, truncated, info = venv.step(rng.integers(0, [3, 2], size=(3, 2)))
        assert reward.shape == (3,) and obs.shape == (3, 137)
        if "final_obs" in info:
            done = info["_final_obs"]
            assert np.array_equal(done, terminated | truncated)
            ended += int(done.sum())
    assert ended == 3  # every arena ended once and was reset in that same step
    venv.close()


def test_pyramids_native_vector_matches_the_single_env_spaces():
    venv = make_vec_env("Pyramids", 4, seed=1, vectorization="auto")
    assert isinstance(venv, ArenaVectorEnv)
    obs, _ = venv.reset(seed=1)
    assert obs.shape == (4, 172) and obs.dtype == np.float32
    for _ in range(5):
        obs, reward, terminated, truncated, _ = venv.step(np.array([1, 3, 4, 0]))
    assert np.all(reward < 0) and not terminated.any()  # the time penalty, nobody at the gold brick yet
    venv.close()


def test_ppo_trains_on_the_native_arenas(tmp_path):
    from deeprl.train import train

    run = train(
        "ppo",
        "SnowballTarget",
        n_timesteps=512,
        overrides={"n_envs": 4, "n_steps": 64, "batch_size": 64},
        log_folder=tmp_path,
        show_progress=False,
    )
    assert (run.run_dir / "model.safetensors").is_file()
