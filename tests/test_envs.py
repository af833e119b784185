import pytest

from deeprl.envs import env_tag, get_spec, make_env, parse_env_kwargs, resolve_env
from deeprl.errors import UserError


def test_course_ids_map_to_current_gymnasium():
    assert make_env("Taxi-v3").spec.id == "Taxi-v4"
    assert make_env("LunarLander-v2").spec.id == "LunarLander-v3"
    assert make_env("CartPole-v1").spec.id == "CartPole-v1"
    for env_id in ("MountainCar-v0", "Acrobot-v1"):
        assert make_env(env_id).spec.id == env_id


def test_frozenlake_kwargs_and_tags():
    env = make_env("FrozenLake-v1", {"map_name": "8x8", "is_slippery": False})
    assert env.observation_space.n == 64
    assert env_tag("FrozenLake-v1", {"map_name": "4x4", "is_slippery": False}) == "FrozenLake-v1-4x4-no_slippery"
    assert env_tag("FrozenLake-v1", {"map_name": "8x8"}) == "FrozenLake-v1-8x8"
    assert env_tag("Taxi-v3") == "Taxi-v3"
    spec, kwargs = resolve_env("FrozenLake-v1-8x8-no_slippery")
    assert spec.course_id == "FrozenLake-v1" and kwargs == {"map_name": "8x8", "is_slippery": False}


def test_evaluation_settings_per_env():
    taxi = get_spec("Taxi-v3")
    assert taxi.n_eval_episodes == 100 and taxi.eval_max_steps == 99 and len(taxi.eval_seeds) == 100
    assert taxi.eval_seeds[:3] == (16, 54, 165)
    assert get_spec("FrozenLake-v1").eval_max_steps == 99
    assert get_spec("CartPole-v1").n_eval_episodes == 10


def test_wrong_id_names_closest():
    with pytest.raises(UserError) as err:
        get_spec("Taxi-v2")
    assert "Taxi-v3" in str(err.value) and "deeprl envs" in str(err.value)
    with pytest.raises(UserError, match="LunarLander-v2"):
        get_spec("LunarLandr-v2")


def test_bad_env_kwargs_is_one_sentence():
    with pytest.raises(UserError, match="does not take"):
        make_env("CartPole-v1", {"map_name": "4x4"})
    with pytest.raises(UserError):
        parse_env_kwargs(["is_slippery"])
    assert parse_env_kwargs(["map_name:4x4", "is_slippery:False"]) == {"map_name": "4x4", "is_slippery": False}


def test_deprecation_note_said_once(capsys):
    from deeprl import log

    log._said.discard("LunarLander-v2")
    for _ in range(3):
        make_env("LunarLander-v2").close()
    err = capsys.readouterr().err
    assert err.count("LunarLander-v2 runs as LunarLander-v3") == 1
