"""The local hub: push -> load -> evaluate round trips, the card, revisions, atomicity, locking, bad input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deeprl.cli import main
from deeprl.errors import UserError
from deeprl.hub import get_hub, resolve_repo, validate_repo_id
from deeprl.hub.card import read_claim
from deeprl.hub.local import LocalHub
from deeprl.publish import push_model

REQUIRED_TAGS = {"reinforcement-learning", "deep-reinforcement-learning", "deep-rl-course", "qlearning"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from deeprl.train import train

    logs = tmp_path_factory.mktemp("logs")
    taxi = train("qlearning", "Taxi-v3", overrides={"n_training_episodes": 3000}, log_folder=logs, show_progress=False)
    lake = train("qlearning", "FrozenLake-v1", env_kwargs={"is_slippery": False}, log_folder=logs, show_progress=False)
    return {"taxi": taxi.run_dir, "lake": lake.run_dir}


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def run_main(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# -- repo ids ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "../x",
        "a/../b",
        "a/b/c",
        "/abs/x",
        "a",
        "a/b..c",
        "-a/b",
        "a/b-",
        "a/b.git",
        "a//b",
        "",
        "a/b c",
        "~/x",
        "a\\b/c",
        "a/" + "x" * 97,
        "a--b/c",
    ],
)
def test_bad_repo_ids_are_refused_in_one_sentence(bad):
    with pytest.raises(UserError) as exc:
        validate_repo_id(bad)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("good", ["alice/q-Taxi-v3", "a/b", "Org_1/ppo.LunarLander-v2", "x/" + "y" * 96])
def test_good_repo_ids(good):
    assert validate_repo_id(good) == good


def test_push_refuses_bad_repo_id_on_the_cli(runs, capsys, _isolated_home):
    code, _, err = run_main(capsys, "push", runs["lake"], "--repo-id", "../evil", "--no-video")
    assert code == 2 and err.count("\n") == 1 and "not a valid repo id" in err
    assert not (_isolated_home / "evil").exists() and not (_isolated_home / "hub").exists()


# -- round trip -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which,tag", [("taxi", "Taxi-v3"), ("lake", "FrozenLake-v1-4x4-no_slippery")])
def test_push_load_evaluate_round_trip(runs, which, tag, tmp_path, capsys, _isolated_home):
    from huggingface_hub import ModelCard

    from deeprl.agent import load_agent
    from deeprl.evaluation import evaluate
    from deeprl.video import probe

    repo_id = f"alice/q-{tag}"
    out = push_model(runs[which], repo_id)
    repo = _isolated_home / "hub" / repo_id
    assert out["location"] == str(repo) and out["revision"] == git(repo, "rev-parse", "HEAD").strip()
    files = set(git(repo, "ls-files").split())
    assert {"README.md", "config.json", "results.json", "model.safetensors", "replay.mp4"} <= files
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "rev-list", "--count", "HEAD").strip() == "1"

    # the card: huggingface_hub reads our metric; read_claim (for the leaderboard) agrees
    res = out["results"]
    card = ModelCard.load(repo / "README.md")
    assert card.data.library_name == "deeprl"
    assert tag in card.data.tags and REQUIRED_TAGS <= set(card.data.tags)
    (ev,) = card.data.eval_results
    assert ev.metric_type == "mean_reward" and ev.dataset_name == tag and ev.task_type == "reinforcement-learning"
    assert ev.metric_value == f"{res['mean_reward']:.2f} +/- {res['std_reward']:.2f}"
    claim = read_claim(repo / "README.md")
    assert claim["env_tag"] == tag and claim["mean"] == round(res["mean_reward"], 2)
    assert claim["std"] == round(res["std_reward"], 2)
    assert read_claim((repo / "README.md").read_text()) == claim

    # the replay decodes as H.264 with frames
    info = probe(repo / "replay.mp4")
    assert info["codec"].startswith("h264") and info["frames"] > 0

    # load by repo id into a folder, evaluate: the very same figures
    dest = tmp_path / "loaded"
    code, stdout, err = run_main(capsys, "load", repo_id, "-f", dest)
    assert code == 0, err
    assert out["revision"] in stdout and str(dest) in stdout
    # RL-Zoo's layout, so `deeprl enjoy --algo A --env E -f DEST` finds it
    (config_path,) = dest.glob("qlearning/*_1/config.json")
    assert config_path.parent.name == f"{out['results']['env_tag']}_1"
    dest = config_path.parent
    again = evaluate(load_agent(dest))
    for key in ("mean_reward", "std_reward", "episode_rewards", "episode_lengths", "n_eval_episodes", "env_tag"):
        assert again[key] == res[key]
    saved = json.loads((dest / "results.json").read_text())
    assert saved["mean_reward"] == res["mean_reward"] and saved["episode_rewards"] == res["episode_rewards"]
    original = np.asarray(load_agent(runs[which]).qtable)
    np.testing.assert_array_equal(np.asarray(load_agent(dest).qtable), original)

    # `deeprl evaluate NS/NAME` goes through the hub too
    code, stdout, _ = run_main(capsys, "evaluate", repo_id, "--json")
    assert code == 0
    assert json.loads(stdout)["episode_rewards"] == res["episode_rewards"]


def test_revisions_old_revision_and_listing(runs, tmp_path, capsys, _isolated_home):
    hub = get_hub("local")
    first = push_model(runs["lake"], "bob/lake", commit_message="first", record_video=False, n_eval_episodes=5)
    second = push_model(runs["lake"], "bob/lake", commit_message="second", record_video=False, n_eval_episodes=7)
    revs = hub.revisions("bob/lake")
    assert [r[0] for r in revs] == [second["revision"], first["revision"]]
    assert [r[2] for r in revs] == ["second", "first"]
    assert all(r[1].tzinfo is not None for r in revs)

    repo = _isolated_home / "hub" / "bob" / "lake"
    old = resolve_repo("bob/lake", first["revision"])
    assert old != repo and str(old).startswith(str(_isolated_home / "cache"))
    assert json.loads((old / "results.json").read_text())["n_eval_episodes"] == 5
    assert resolve_repo("bob/lake", first["revision"][:10]) == old  # short shas work, same cache folder
    # the repository's own work tree still shows the latest push
    assert json.loads((repo / "results.json").read_text())["n_eval_episodes"] == 7
    assert git(repo, "status", "--porcelain") == ""
    assert resolve_repo("bob/lake") == repo

    code, stdout, _ = run_main(
        capsys, "evaluate", "bob/lake", "--revision", first["revision"], "--json", "--n-eval-episodes", "3"
    )
    assert code == 0 and json.loads(stdout)["n_eval_episodes"] == 3
    code, _, err = run_main(capsys, "load", "bob/lake", "--revision", "nope", "-f", tmp_path / "x")
    assert code == 2 and "no revision 'nope'" in err

    push_model(runs["taxi"], "carol/taxi", record_video=False, n_eval_episodes=2)
    listed = {m.repo_id: m for m in hub.list_models()}
    assert set(listed) == {"bob/lake", "carol/taxi"}
    assert listed["bob/lake"].revision == second["revision"]
    assert listed["bob/lake"].pushed_at.tzinfo is not None
    assert [m.repo_id for m in hub.list_models("FrozenLake-v1-4x4-no_slippery")] == ["bob/lake"]
    assert [m.repo_id for m in hub.list_models("Taxi-v3")] == ["carol/taxi"]
    assert hub.list_models("deep-rl-course") and hub.list_models("no-such-tag") == []


def test_unknown_repo_is_one_sentence(capsys):
    code, _, err = run_main(capsys, "evaluate", "nobody/nothing")
    assert code == 2 and err.count("\n") == 1 and "No repo 'nobody/nothing'" in err
    code, _, err = run_main(capsys, "load", "nobody/nothing")
    assert code == 2 and "No repo" in err


# -- atomicity and locking ----------------------------------------------------------------------------------------


def test_a_push_that_fails_halfway_leaves_the_last_good_commit(runs, monkeypatch, _isolated_home):
    import deeprl.hub.local as local

    good = push_model(runs["lake"], "dan/lake", record_video=False, n_eval_episodes=3)
    repo = _isolated_home / "hub" / "dan" / "lake"
    before = (repo / "results.json").read_bytes()
    real_git = local.git

    def failing_git(r, *args, **kw):
        if args and args[0] == "update-ref":
            raise RuntimeError("disk gone")
        return real_git(r, *args, **kw)

    with monkeypatch.context() as m:
        m.setattr(local, "git", failing_git)
        with pytest.raises(RuntimeError):
            push_model(runs["lake"], "dan/lake", record_video=False, n_eval_episodes=4)
    assert git(repo, "rev-parse", "HEAD").strip() == good["revision"]
    assert (repo / "results.json").read_bytes() == before and git(repo, "status", "--porcelain") == ""
    subprocess.run(["git", "-C", str(repo), "fsck", "--strict"], check=True, capture_output=True)

    # a failure while staging (before any git command) changes nothing either
    import deeprl.publish as publish

    with monkeypatch.context() as m:
        m.setattr(publish, "make_card", lambda *a, **k: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            push_model(runs["lake"], "dan/lake", record_video=False, n_eval_episodes=4)
    assert git(repo, "rev-parse", "HEAD").strip() == good["revision"]

    # dying after the ref moved but before the work tree synced: the next read finishes the sync
    with monkeypatch.context() as m:
        m.setattr(local.LocalHub, "_sync", lambda self, r, c: None)
        newer = push_model(runs["lake"], "dan/lake", record_video=False, n_eval_episodes=6)
    assert json.loads((repo / "results.json").read_text())["n_eval_episodes"] == 3  # stale work tree
    assert resolve_repo("dan/lake") == repo
    assert json.loads((repo / "results.json").read_text())["n_eval_episodes"] == 6
    assert git(repo, "rev-parse", "HEAD").strip() == newer["revision"]


PUSHER = r"""
import hashlib, sys
from pathlib import Path
from deeprl.hub.local import LocalHub
i, root = int(sys.argv[1]), Path(sys.argv[2])
folder = root / f"p{i}"
folder.mkdir()
payload = hashlib.sha256(str(i).encode()).hexdigest().encode() * 2000
(folder / "payload.bin").write_bytes(payload)
(folder / "checksum.txt").write_text(hashlib.sha256(payload).hexdigest())
print(LocalHub().push(folder, "many/pushers", f"push {i}"))
"""


def test_concurrent_pushers_lose_nothing(tmp_path, _isolated_home):
    n = 6
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PUSHER, str(i), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    shas = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        shas.append(out.strip())
    repo = _isolated_home / "hub" / "many" / "pushers"
    history = git(repo, "log", "--format=%H %s").splitlines()
    assert len(history) == n and {h.split()[0] for h in history} == set(shas)
    assert sorted(h.split(" ", 1)[1] for h in history) == sorted(f"push {i}" for i in range(n))
    subprocess.run(["git", "-C", str(repo), "fsck", "--strict"], check=True, capture_output=True)
    import hashlib

    for sha in shas:  # every commit holds one pusher's files, whole
        payload = subprocess.run(
            ["git", "-C", str(repo), "show", f"{sha}:payload.bin"], capture_output=True, check=True
        ).stdout
        assert hashlib.sha256(payload).hexdigest() == git(repo, "show", f"{sha}:checksum.txt")


# -- a replay that cannot be recorded is a warning --------------------------------------------------------------


def test_failed_recording_is_a_warning_not_a_lost_push(runs, monkeypatch, capsys, _isolated_home):
    import deeprl.video

    def broken(*a, **k):
        raise RuntimeError("ffmpeg exploded")

    monkeypatch.setattr(deeprl.video, "record", broken)
    code, out, err = run_main(capsys, "push", runs["lake"], "--repo-id", "eve/lake", "--n-eval-episodes", "2")
    assert code == 0 and "warning:" in err and "ffmpeg exploded" in err
    repo = _isolated_home / "hub" / "eve" / "lake"
    assert "Pushed eve/lake" in out and str(repo) in out
    assert not (repo / "replay.mp4").exists() and (repo / "model.safetensors").is_file()
    assert "## Replay" not in (repo / "README.md").read_text()


def test_push_command_end_to_end(runs, cli, _isolated_home):
    r = cli("push", runs["lake"], "--repo-id", "fay/lake", "--commit-message", "my first agent")
    assert r.returncode == 0, r.stderr
    repo = _isolated_home / "hub" / "fay" / "lake"
    sha = git(repo, "rev-parse", "HEAD").strip()
    assert str(repo) in r.stdout and sha in r.stdout
    assert git(repo, "log", "-1", "--format=%s").strip() == "my first agent"
    assert "mean_reward=1.00 +/- 0.00" in r.stdout


# -- bad input: one sentence, exit 2, for evaluate, push and load -------------------------------------------------


def _corrupt(case: str, d: Path) -> None:
    from safetensors.numpy import save_file

    model, config = d / "model.safetensors", d / "config.json"
    if case == "truncated":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    elif case == "corrupt":
        model.write_bytes(b"\x00garbage" * 50)
    elif case == "missing-config":
        config.unlink()
    elif case == "malformed-config":
        config.write_text("{not json")
    elif case == "unknown-algo":
        cfg = json.loads(config.read_text())
        config.write_text(json.dumps({**cfg, "algo": "superlearner"}))
    elif case == "wrong-shape":
        save_file({"qtable": np.zeros((3, 3))}, str(model))
    elif case == "nan":
        q = np.zeros((16, 4))
        q[2, 1] = np.nan
        save_file({"qtable": q}, str(model))
    elif case == "missing-model":
        model.unlink()


CASES = [
    "truncated",
    "corrupt",
    "missing-config",
    "malformed-config",
    "unknown-algo",
    "wrong-shape",
    "nan",
    "missing-model",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_model_is_one_sentence_exit_2(case, runs, tmp_path, capsys, _isolated_home):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("model.safetensors", "config.json"):
        shutil.copy(runs["lake"] / name, bad / name)
    _corrupt(case, bad)

    for args in (["evaluate", bad], ["push", bad, "--repo-id", "bad/model", "--no-video"]):
        code, _, err = run_main(capsys, *args)
        assert code == 2, (args, err)
        assert err.startswith("deeprl: error: ") and err.count("\n") == 1, err
    assert not (_isolated_home / "hub" / "bad").exists() or not any((_isolated_home / "hub" / "bad").iterdir())

    # a hub repo holding the bad files: load refuses them too (the files are only read, never executed)
    LocalHub().push(bad, "bad/repo", "bad files")
    code, _, err = run_main(capsys, "load", "bad/repo", "-f", tmp_path / "dl")
    assert code == 2 and err.count("\n") == 1, err
    code, _, err = run_main(capsys, "evaluate", "bad/repo")
    assert code == 2 and err.count("\n") == 1, err


def test_push_a_course_pickle(runs, tmp_path, capsys, _isolated_home):
    """The Unit 2 notebook's q-learning.pkl pushes as safetensors + JSON, with the same figures."""
    import pickle

    from deeprl.agent import load_agent
    from deeprl.evaluation import evaluate

    q = np.asarray(load_agent(runs["lake"]).qtable)
    model = {
        "env_id": "FrozenLake-v1",
        "max_steps": 99,
        "n_training_episodes": 10000,
        "n_eval_episodes": 100,
        "eval_seed": [],
        "learning_rate": 0.7,
        "gamma": 0.95,
        "max_epsilon": 1.0,
        "min_epsilon": 0.05,
        "decay_rate": 0.0005,
        "map_name": "4x4",
        "slippery": False,
        "qtable": q,
    }
    pkl = tmp_path / "q-learning.pkl"
    pkl.write_bytes(pickle.dumps(model))
    code, _, err = run_main(capsys, "push", pkl, "--repo-id", "gus/q-FrozenLake-v1-4x4-noSlippery", "--no-video")
    assert code == 0, err
    repo = _isolated_home / "hub" / "gus" / "q-FrozenLake-v1-4x4-noSlippery"
    assert not list(repo.glob("*.pkl")) and (repo / "model.safetensors").is_file()
    config = json.loads((repo / "config.json").read_text())
    assert config["algo"] == "qlearning" and config["env_tag"] == "FrozenLake-v1-4x4-no_slippery"
    assert evaluate(load_agent(repo))["mean_reward"] == evaluate(load_agent(runs["lake"]))["mean_reward"] == 1.0
