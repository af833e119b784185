"""ML-Agents trainer files (issue 17 item 4): the course's two YAML files map to the same settings as their RL-Zoo
equivalent, unknown keys are one sentence, and `deeprl train -c` takes them as written."""

from pathlib import Path

import pytest

from deeprl.algos import ppo
from deeprl.errors import UserError
from deeprl.settings import load, merge_hyperparams

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    "env,tag,file",
    [
        ("SnowballTarget", "ML-Agents-SnowballTarget", "SnowballTarget.yaml"),
        ("Pyramids", "ML-Agents-Pyramids", "PyramidsRND.yaml"),
    ],
)
def test_course_file_maps_to_the_zoo_equivalent(env, tag, file):
    ml = merge_hyperparams("ppo", ppo, env, tag, str(DATA / file), {}, None)
    zoo = merge_hyperparams("ppo", ppo, env, tag, str(DATA / "ppo-unit5-zoo.yml"), {}, None)
    assert load(ppo.Settings, ml) == load(ppo.Settings, zoo)  # the typed settings PPO trains with
    builtin = merge_hyperparams("ppo", ppo, env, tag, None, {}, None)
    ml, builtin = vars(load(ppo.Settings, ml)), vars(load(ppo.Settings, builtin))
    # hyperparams/ppo.yml holds the same course settings (the RND signal and the logging cadence are the file's)
    differs = {k for k in ml if ml[k] != builtin.get(k)}
    assert differs <= {"reward_signals", "log_interval", "checkpoint_every"}


def test_meanings(tmp_path):
    hp = merge_hyperparams("ppo", ppo, "Pyramids", "ML-Agents-Pyramids", str(DATA / "PyramidsRND.yaml"), {}, None)
    assert hp["n_envs"] * hp["n_steps"] == 2048  # buffer_size
    assert hp["n_steps"] == 128  # time_horizon
    # beta and epsilon decay as the learning rate does (their schedules default to learning_rate_schedule);
    # advantages normalized over the whole buffer, as ML-Agents does
    assert (hp["ent_coef"], hp["gae_lambda"], hp["clip_range"], hp["n_epochs"]) == (
        "lin_0.01",
        0.95,
        "lin_0.2",
        3,
    )
    assert hp["advantage_scope"] == "rollout"
    constant = merge_hyperparams(
        "ppo",
        ppo,
        "Pyramids",
        "ML-Agents-Pyramids",
        _write(tmp_path, "behaviors:\n  Pyramids:\n    hyperparameters: {beta: 0.02, epsilon_schedule: constant}\n"),
        {},
        None,
    )
    assert (constant["ent_coef"], constant["clip_range"], constant["learning_rate"]) == (
        "lin_0.02",
        0.2,
        "lin_0.0003",
    )
    assert hp["learning_rate"] == "lin_0.0003"
    assert hp["reward_signals"]["rnd"] == {
        "strength": 0.01,
        "gamma": 0.99,
        "learning_rate": 1e-4,
        "net_arch": [64, 64, 64],
    }


def _write(tmp_path, text):
    p = tmp_path / "t.yaml"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize(
    "text,word",
    [
        ("behaviors:\n  Pyramids:\n    hyperparameters:\n      batch_sise: 64\n", "batch_sise"),
        ("behaviors:\n  Pyramids:\n    memory: {sequence_length: 64}\n", "memory"),
        ("behaviors:\n  Pyramids:\n    reward_signals:\n      gail: {strength: 0.1}\n", "gail"),
        ("behaviors:\n  Pyramids:\n    trainer_type: sac\n", "sac"),
        ("behaviors:\n  Pyramids: {}\nenv_settings: {num_envs: 2}\n", "env_settings"),
    ],
)
def test_unknown_keys_are_one_sentence(tmp_path, text, word):
    with pytest.raises(UserError) as err:
        merge_hyperparams("ppo", ppo, "Pyramids", "ML-Agents-Pyramids", _write(tmp_path, text), {}, None)
    assert word in str(err.value) and "\n" not in str(err.value)


def test_train_with_the_course_file(tmp_path, cli):
    """As written, and without --algo: the trainer file says PPO (trainer_type: ppo), as mlagents-learn needs none."""
    r = cli(
        "train",
        "--env",
        "SnowballTarget",
        "-c",
        DATA / "SnowballTarget.yaml",
        "-f",
        tmp_path,
        "-n",
        "2048",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    assert "keep_checkpoints, threaded, vis_encode_type" in r.stderr
    assert list((tmp_path / "ppo").glob("*SnowballTarget_1/model.safetensors"))
    other = cli("train", "--env", "CartPole-v1", "-c", DATA / "ppo-unit5-zoo.yml", "-f", tmp_path, "-n", "64")
    assert other.returncode == 2 and "--algo" in other.stderr  # an RL-Zoo file names no algorithm


def test_run_id_names_the_run_folder(tmp_path, cli):
    args = ("train", "--algo", "ppo", "--env", "CartPole-v1", "-f", tmp_path, "--run-id", "CartTraining", "--quiet")
    assert cli(*args, "-n", "512").returncode == 0
    assert (tmp_path / "ppo" / "CartTraining" / "model.safetensors").is_file()
    again = cli(*args, "-n", "512")
    assert again.returncode == 2 and "--resume" in again.stderr
    assert cli(*args, "-n", "1024", "--resume").returncode == 0
    assert cli("train", "--algo", "ppo", "--env", "CartPole-v1", "--run-id", "../up", "-n", "64").returncode == 2


def test_enjoy_and_evaluate_find_a_named_run(tmp_path, cli):
    """ML-Agents' --run-id names the run for enjoy and evaluate too: LOG_FOLDER/ALGO/RUN_ID, --algo optional."""
    import json

    train = ("train", "--env", "CartPole-v1", "-f", tmp_path, "--run-id", "Cart", "--quiet", "-n", "256")
    assert cli(*train, "--algo", "ppo").returncode == 0
    ev = cli("evaluate", "--run-id", "Cart", "-f", tmp_path, "--n-eval-episodes", "2", "--json")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["n_eval_episodes"] == 2
    enjoy = cli("enjoy", "--algo", "ppo", "--run-id", "Cart", "-f", tmp_path, "--no-render")
    assert enjoy.returncode == 0 and "episode 1: return" in enjoy.stdout
    missing = cli("evaluate", "--run-id", "Other", "-f", tmp_path)
    assert missing.returncode == 2 and "No run named Other" in missing.stderr
    assert cli(*train, "--algo", "a2c").returncode == 0  # the same name for another algorithm: say which
    both = cli("enjoy", "--run-id", "Cart", "-f", tmp_path, "--no-render")
    assert both.returncode == 2 and "--algo" in both.stderr
    assert cli("evaluate", "--run-id", "../Cart", "-f", tmp_path).returncode == 2


def test_curiosity_file_maps_encoding_size(tmp_path):
    text = (
        "behaviors:\n  Pyramids:\n    reward_signals:\n      extrinsic: {gamma: 0.99, strength: 1.0}\n"
        "      curiosity: {gamma: 0.99, strength: 0.02, encoding_size: 256, learning_rate: 0.0003}\n"
    )
    hp = merge_hyperparams("ppo", ppo, "Pyramids", "ML-Agents-Pyramids", _write(tmp_path, text), {}, None)
    from deeprl.rewards import parse_reward_signals

    assert parse_reward_signals(hp["reward_signals"])["curiosity"] == {
        "strength": 0.02,
        "gamma": 0.99,
        "learning_rate": 3e-4,
        "net_arch": [256, 256],
    }


def test_mlagents_learn_and_push_as_the_course_types_them(tmp_path, cli):
    """Unit 5's two commands, typed as the course's notebook types them: the executable path names the env, the
    run goes to results/ppo/RUN_ID, a second run of the same id needs --resume or --force, and
    mlagents-push-to-hf takes ML-Agents' ./results/RUN_ID."""
    text = (DATA / "SnowballTarget.yaml").read_text().replace("max_steps: 200000", "max_steps: 2048")
    config = tmp_path / "SnowballTarget.yaml"
    config.write_text(text)
    exe = "./training-envs-executables/linux/SnowballTarget/SnowballTarget"
    learn = ("mlagents-learn", config, f"--env={exe}", "--run-id=Snowball 1", "--no-graphics")
    r = cli(*learn, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run_dir = tmp_path / "results" / "ppo" / "Snowball 1"
    assert (run_dir / "model.safetensors").is_file()
    again = cli(*learn, cwd=tmp_path)
    assert again.returncode == 2 and "--resume" in again.stderr and "--force" in again.stderr
    longer = tmp_path / "longer.yaml"
    longer.write_text(text.replace("max_steps: 2048", "max_steps: 4096"))
    resumed = cli("mlagents-learn", longer, "--run-id=Snowball 1", "--resume", cwd=tmp_path)  # env: the behavior
    assert resumed.returncode == 0, resumed.stderr
    import json

    assert json.loads((run_dir / "config.json").read_text())["trained"]["timesteps"] == 4096
    push = cli(
        "mlagents-push-to-hf",
        "--run-id=Snowball 1",
        "--local-dir=./results/Snowball 1",
        "--repo-id=alice/ppo-SnowballTarget",
        "--commit-message=First Push",
        cwd=tmp_path,
    )
    assert push.returncode == 0, push.stderr
    assert "ML-Agents-SnowballTarget" in push.stdout and "Pushed alice/ppo-SnowballTarget" in push.stdout
    wrong = cli("mlagents-learn", config, "--env=./envs/Walker", "--run-id=x", cwd=tmp_path)
    assert wrong.returncode == 2 and "not a Unit 5 environment" in wrong.stderr
    missing = cli("mlagents-push-to-hf", "--run-id=y", "--local-dir=./results/y", "--repo-id=a/b", cwd=tmp_path)
    assert missing.returncode == 2 and "No mlagents-learn run" in missing.stderr
