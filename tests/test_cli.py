import json


def test_envs_lists_course_ids(cli):
    out = cli("envs", "--json")
    assert out.returncode == 0
    ids = [e["env_id"] for e in json.loads(out.stdout)["envs"]]
    assert {"Taxi-v3", "FrozenLake-v1", "LunarLander-v2", "CartPole-v1"} <= set(ids)


def test_train_then_evaluate_json(cli, tmp_path):
    out = cli(
        "train",
        "--algo",
        "qlearning",
        "--env",
        "FrozenLake-v1",
        "--env-kwargs",
        "map_name:4x4",
        "is_slippery:False",
        "-f",
        tmp_path,
        "--seed",
        "0",
    )
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "qlearning" / "FrozenLake-v1-4x4-no_slippery_1"
    ev = cli("evaluate", run_dir, "--json")
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)  # stdout is exactly one JSON object
    assert result["mean_reward"] == 1.0 and result["n_eval_episodes"] == 100
    en = cli("enjoy", "--algo", "qlearning", "--env", "FrozenLake-v1-4x4-no_slippery", "-f", tmp_path, "--no-render")
    assert en.returncode == 0 and "return 1.00" in en.stdout


def assert_one_sentence_exit_2(out, *needles):
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("deeprl: error:")]
    assert len(lines) == 1, out.stderr
    for n in needles:
        assert n in lines[0]


def test_user_mistakes_exit_2(cli, tmp_path):
    assert_one_sentence_exit_2(cli("train", "--algo", "qlearning", "--env", "Taxi-v2", "-f", tmp_path), "Taxi-v3")
    assert_one_sentence_exit_2(cli("train", "--algo", "qlearnin", "--env", "Taxi-v3", "-f", tmp_path), "qlearning")
    assert_one_sentence_exit_2(cli("evaluate", tmp_path / "nope"), "does not exist")
    assert_one_sentence_exit_2(cli("train", "--env", "Taxi-v3"), "--algo")
    assert_one_sentence_exit_2(cli("train", "--algo", "qlearning", "--env", "CartPole-v1", "-f", tmp_path), "discrete")
    assert_one_sentence_exit_2(
        cli("train", "--algo", "qlearning", "--env", "Taxi-v3", "-f", tmp_path, "-c", tmp_path / "missing.yml"),
        "missing.yml",
    )
    bad = tmp_path / "model"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    (bad / "model.safetensors").write_bytes(b"\x00" * 10)
    assert_one_sentence_exit_2(cli("evaluate", bad), "config.json")


def test_progress_rate_counts_only_this_process(capsys, monkeypatch):
    """A resumed run starts its bar at the checkpoint's step; its rate is this process's steps over its time."""
    import deeprl.log

    clock = iter([100.0, 110.0, 110.0])  # creation, then the update and its line, 10 s later
    monkeypatch.setattr(deeprl.log.time, "perf_counter", lambda: next(clock))
    p = deeprl.log.Progress(1_000_000, "steps", desc="ppo X", every_s=5.0, initial=900_000)
    p.update(5_000)
    line = capsys.readouterr().err.strip()
    assert line.startswith("[ppo X] 905000/1000000 steps (500 steps/s)"), line


def test_ctrl_c_stops_training_at_the_next_progress_update():
    """The first Ctrl-C only asks to stop: a flag that the training loop reports at its next progress update, where
    the algorithm leaves its loop and the frame saves the checkpoint and model; a second one stops at once. Raising
    inside a library call could leave its lock held."""
    import os
    import signal
    from types import SimpleNamespace

    import pytest

    from deeprl.loop import Loop
    from deeprl.train import _restore_handlers, _stop_on_signals

    run = SimpleNamespace(
        stop_requested=False, stopped_by_callback=False, callbacks=[], algo="a", env_id="e", show_progress=False
    )
    saved = []
    previous = _stop_on_signals(run)
    try:
        loop = Loop(
            run,
            100,
            "steps",
            checkpoint=lambda: saved.append("checkpoint"),
            save=lambda stopped: saved.append(("model", stopped)),
        )
        assert not loop.update(1, 1)
        os.kill(os.getpid(), signal.SIGINT)  # handled before the next statement: no exception, a request
        assert run.stop_requested
        assert loop.update(1, 2)  # a flag, not an exception
        assert loop.progress.done == 2
        with loop:
            pass
        assert saved == ["checkpoint", ("model", True)]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)  # the second signal
            for _ in range(1000):  # (delivered at the next bytecode boundary)
                pass
    finally:
        _restore_handlers(previous)
    assert signal.getsignal(signal.SIGINT) is previous[signal.SIGINT]
