"""Issue 20 item 2: the Hub's SB3 course models indexed, ranked and counted for certification.

The stand-in Hugging Face Hub (tests/hf_standin.py) holds SB3-format repos laid out as the course's
`package_to_hub` pushes them (the zip, SB3's `data` as config.json, the zip unzipped, the card, results.json,
replay.mp4), made from tiny SB3 models trained here. The real huggingface_hub client lists and downloads them;
each model is evaluated in the leaderboard's limited child process.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import pickle
import sys
import zipfile
from pathlib import Path

import pytest
import torch

pytest.importorskip("stable_baselines3")
pytest.importorskip("panda_gym")  # Unit 6's env

from stable_baselines3 import A2C, DQN, PPO  # noqa: E402

from deeprl import db  # noqa: E402
from deeprl.cli import main  # noqa: E402
from deeprl.commands.push import repo_card  # noqa: E402
from deeprl.leaderboard import ranking, unranked  # noqa: E402
from deeprl.leaderboard.sandbox import model_files  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from hf_standin import StandIn, point_at  # noqa: E402

COURSE_TAGS = ["deep-reinforcement-learning", "reinforcement-learning", "stable-baselines3", "deep-rl-course"]


class Touch:
    """Unpickling this creates a file: what a malicious `:serialized:` entry or policy.pth could do."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def panda_controller() -> A2C:
    """The course's Unit 6 model shape (A2C, MultiInputPolicy on PandaReachDense-v3), trained 100 steps, then its
    policy set by hand to a proportional controller (action ~ desired - achieved goal), so that it meets the
    unit's -3.5 without an hour of training."""
    import panda_gym  # noqa: F401  # registers PandaReachDense-v3

    model = A2C("MultiInputPolicy", "PandaReachDense-v3", n_steps=5, seed=0)
    model.learn(100)
    # features: achieved_goal (0-2), desired_goal (3-5), observation (6-11), as SB3's CombinedExtractor sorts them
    w1, w2, out = torch.zeros(64, 12), torch.zeros(64, 64), torch.zeros(3, 64)
    for i in range(3):
        w1[i, 3 + i], w1[i, i], w2[i, i], out[i, i] = 10.0, -10.0, 1.0, 2.0
    net = model.policy.mlp_extractor.policy_net
    with torch.no_grad():
        for layer, w in ((net[0], w1), (net[2], w2), (model.policy.action_net, out)):
            layer.weight.copy_(w)
            layer.bias.zero_()
    return model


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    """{name: SB3 zip} trained (a few hundred steps) and saved by SB3 itself."""
    folder = tmp_path_factory.mktemp("sb3-zips")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    lander = PPO("MlpPolicy", "LunarLander-v3", n_steps=128, batch_size=64, n_epochs=2, seed=0)
    lander.learn(256)
    cartpole = DQN("MlpPolicy", "CartPole-v1", learning_starts=100, train_freq=4, buffer_size=2000, seed=0)
    cartpole.learn(300)
    ppo_cartpole = PPO("MlpPolicy", "CartPole-v1", n_steps=128, batch_size=64, n_epochs=2, seed=0)
    ppo_cartpole.learn(128)
    out = {}
    for name, model in (
        ("ppo-LunarLander-v2", lander),
        ("dqn-CartPole-v1", cartpole),
        ("ppo-CartPole-v1", ppo_cartpole),
        ("a2c-PandaReachDense-v3", panda_controller()),
    ):
        out[name] = folder / f"{name}.zip"
        model.save(out[name])
    torch.set_num_threads(threads)
    return out


def rewrite(src: Path, **members: bytes) -> bytes:
    """The zip `src` with some members replaced."""
    buf = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            zout.writestr(name, members.get(name, zin.read(name)))
    return buf.getvalue()


def course_repo(zip_bytes: bytes, name: str, env_tag: str | None, tags: list[str] | None = None) -> dict[str, bytes]:
    """A repo as huggingface_sb3's package_to_hub writes it: {name}.zip, config.json (SB3's data), the zip unzipped
    under {name}/, README.md (the card, claiming 100 +/- 10), results.json and a replay (1 MiB here)."""
    files = {f"{name}.zip": zip_bytes, "replay.mp4": b"\0" * (1 << 20)}
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        files["config.json"] = zf.read("data")
        files.update({f"{name}/{member}": zf.read(member) for member in zf.namelist()})
    results = {"env_tag": env_tag or "unknown", "mean_reward": 100.0, "std_reward": 10.0, "n_eval_episodes": 10}
    card = repo_card(f"x/{name}", f"{name}.zip", name.split("-")[0], results, True, "hf")
    if tags is not None:  # a card with other tags than the course's
        head, _, body = card.partition("---\n")[2].partition("---\n")
        import yaml

        meta = yaml.safe_load(head)
        meta["tags"] = tags
        if env_tag is None:
            meta.pop("model-index")
        card = "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n" + body
    files["README.md"] = card.encode()
    files["results.json"] = json.dumps(results).encode()
    return files


@pytest.fixture(scope="module")
def hub(zips, tmp_path_factory):
    """The stand-in, holding the course's SB3 repos and a few hostile ones; yields (standin, markers)."""
    marks = tmp_path_factory.mktemp("markers")
    payload = base64.b64encode(pickle.dumps(Touch(str(marks / "data-ran")))).decode()
    with zipfile.ZipFile(zips["ppo-CartPole-v1"]) as zf:
        data = json.loads(zf.read("data"))
    for key in ("observation_space", "action_space", "policy_class", "lr_schedule", "clip_range"):
        data[key][":serialized:"] = payload
    evil_data = rewrite(zips["ppo-CartPole-v1"], data=json.dumps(data).encode())
    buf = io.BytesIO()
    torch.save({"q_net.q_net.0.weight": torch.zeros(64, 4), "x": Touch(str(marks / "pth-ran"))}, buf)
    evil_pth = rewrite(zips["dqn-CartPole-v1"], **{"policy.pth": buf.getvalue()})
    with StandIn(token="hf_standin_token") as s:
        for repo_id, files in {
            "alice/ppo-LunarLander-v2": course_repo(
                zips["ppo-LunarLander-v2"].read_bytes(), "ppo-LunarLander-v2", "LunarLander-v2"
            ),
            "alice/a2c-PandaReachDense-v3": course_repo(
                zips["a2c-PandaReachDense-v3"].read_bytes(), "a2c-PandaReachDense-v3", "PandaReachDense-v3"
            ),
            "bob/dqn-CartPole-v1": course_repo(zips["dqn-CartPole-v1"].read_bytes(), "dqn-CartPole-v1", "CartPole-v1"),
            # not tagged deep-rl-course: outside `--filter deep-rl-course`
            "carol/ppo-LunarLander-v2": course_repo(
                zips["ppo-LunarLander-v2"].read_bytes(),
                "ppo-LunarLander-v2",
                "LunarLander-v2",
                ["LunarLander-v2", "reinforcement-learning", "stable-baselines3"],
            ),
            "mallory/ppo-CartPole-v1": course_repo(evil_data, "ppo-CartPole-v1", "CartPole-v1"),
            "mallory/dqn-CartPole-v1": course_repo(evil_pth, "dqn-CartPole-v1", "CartPole-v1"),
            # a card and a name that name no env
            "mallory/my-agent": course_repo(
                zips["ppo-CartPole-v1"].read_bytes(), "my-agent", None, ["reinforcement-learning", "deep-rl-course"]
            ),
        }.items():
            s.add_repo(repo_id, files)
        yield s, marks


@pytest.fixture
def standin(hub, monkeypatch, tmp_path):
    s, _ = hub
    point_at(monkeypatch, tmp_path, s.url)
    return s


def run_main(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def indexed(hub, tmp_path_factory):
    """One database, indexed once for the tests below (each model's evaluation is a child process that imports
    torch: a few seconds each): `deeprl index --hub hf --author bob`, then `--filter deep-rl-course`. Yields
    {'home', 'author', 'filter': the two JSON reports, 'fetched': the files the second run downloaded}."""
    s, _ = hub
    home = tmp_path_factory.mktemp("indexed-home")
    reports = {"home": home}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPRL_HOME", str(home))
        point_at(mp, home, s.url)
        for key, option in (("author", ["--author", "bob"]), ("filter", ["--filter", "deep-rl-course"])):
            del s.store.requests[:]
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                assert main(["index", "--hub", "hf", *option, "--json"]) == 0
            reports[key] = json.loads(out.getvalue())
        reports["fetched"] = {
            path.split("/resolve/", 1)[1].split("/", 1)[1]
            for verb, path in s.store.requests
            if verb == "GET" and "/resolve/" in path
        }
    return reports


@pytest.fixture
def at_indexed(indexed, standin, monkeypatch):
    monkeypatch.setenv("DEEPRL_HOME", str(indexed["home"]))
    return indexed


def board(env: str) -> list[str]:
    with db.session() as s:
        return [r["repo_id"] for r in ranking(s, env, hub="hf")[0]]


def errors() -> dict[str, str]:
    with db.session() as s:
        return {e["repo_id"]: e["error"] for e in unranked(s, None, hub="hf", any_env=True)}


def test_index_filter_ranks_the_course_sb3_repos_and_fetches_only_their_models(at_indexed, hub):
    report = at_indexed["filter"]
    # carol's repo is not tagged deep-rl-course; bob's was evaluated by the --author run already
    assert (report["listed"], report["evaluated"], report["skipped"]) == (6, 5, 1)
    assert board("LunarLander-v2") == ["alice/ppo-LunarLander-v2"]
    assert board("PandaReachDense-v3") == ["alice/a2c-PandaReachDense-v3"]
    # the zip whose data holds cloudpickle entries is ranked: those entries are never decoded
    assert sorted(board("CartPole-v1")) == ["bob/dqn-CartPole-v1", "mallory/ppo-CartPole-v1"]
    why = errors()
    assert set(why) == {"mallory/dqn-CartPole-v1", "mallory/my-agent"}
    assert "policy.pth is not a plain tensor file that loads safely" in why["mallory/dqn-CartPole-v1"]
    assert "names no env the leaderboard ranks" in why["mallory/my-agent"]
    _, marks = hub
    assert not (marks / "data-ran").exists() and not (marks / "pth-ran").exists()
    # only the zips and the cards were downloaded: not the replays, SB3's config.json nor the unzipped copies
    assert at_indexed["fetched"] == {
        "ppo-LunarLander-v2.zip",
        "a2c-PandaReachDense-v3.zip",
        "ppo-CartPole-v1.zip",
        "dqn-CartPole-v1.zip",
        "my-agent.zip",
        "README.md",
    }
    # the card's claim (100 +/- 10) is stored beside the verified figures, and flagged as far from them
    with db.session() as s:
        (row,) = ranking(s, "LunarLander-v2", hub="hf")[0]
    assert row["algo"] == "ppo" and row["claimed_result"] == 90.0 and row["flagged"]


def test_author_search_and_limit_take_part_of_the_hub(at_indexed, capsys):
    from deeprl.hub import get_hub
    from deeprl.leaderboard.indexer import Listing, list_hub

    assert (at_indexed["author"]["listed"], at_indexed["author"]["evaluated"]) == (1, 1)
    hf = get_hub("hf")
    listed = lambda **kw: sorted(m.repo_id for m in list_hub(hf, "hf", Listing(**kw)))  # noqa: E731
    assert listed(search="lunarlander") == ["alice/ppo-LunarLander-v2", "carol/ppo-LunarLander-v2"]
    assert listed(author="mallory", filters=("CartPole-v1",)) == ["mallory/dqn-CartPole-v1", "mallory/ppo-CartPole-v1"]
    assert len(listed(limit=2)) == 2
    code, _, err = run_main(capsys, "index", "--hub", "hf", "--author", "../etc")
    assert code == 2 and err.count("\n") == 1
    # a run over part of the hub leaves the repos outside it as they are
    code, out, err = run_main(capsys, "index", "--hub", "hf", "--author", "bob", "--json")
    assert code == 0 and json.loads(out)["removed"] == 0
    assert "alice/ppo-LunarLander-v2" in board("LunarLander-v2")


def test_progress_counts_sb3_repos_for_units_1_3_and_6(at_indexed, capsys):
    code, out, err = run_main(capsys, "progress", "alice", "--hub", "hf", "--json")  # lists alice's repos only
    assert code == 0, err
    rows = {r["key"]: r for r in json.loads(out)["assignments"]}
    assert rows["unit6"]["passed"] and rows["unit6"]["used"] == ["alice/a2c-PandaReachDense-v3"]
    # counted for Unit 1 (too weak to pass: a 256-step PPO) ...
    assert not rows["unit1"]["passed"] and rows["unit1"]["best_model"] == "alice/ppo-LunarLander-v2"
    assert "best LunarLander-v2 result is" in rows["unit1"]["missing"]
    # ... but not for Unit 8.1, PPO written from scratch
    assert not rows["unit8.1"]["passed"] and "is a Stable-Baselines3 model" in rows["unit8.1"]["missing"]


def test_push_of_an_sb3_zip_makes_a_course_repo_that_ranks(zips, standin, tmp_path, capsys):
    code, out, err = run_main(
        capsys,
        "push",
        zips["dqn-CartPole-v1"],
        "--repo-id",
        "dave/dqn-CartPole-v1",
        "--hub",
        "hf",
        "--n-eval-episodes",
        "3",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["format"] == "stable-baselines3"
    files = standin.store.repos["dave/dqn-CartPole-v1"]["commits"][-1]["files"]
    assert set(files) == {"dqn-CartPole-v1.zip", "README.md", "results.json", "replay.mp4"}
    assert files["dqn-CartPole-v1.zip"] == zips["dqn-CartPole-v1"].read_bytes()  # as it is: SB3 loads it
    from huggingface_hub import ModelCard

    card = ModelCard(files["README.md"].decode())
    assert card.data.library_name == "stable-baselines3" and card.data.tags[0] == "CartPole-v1"
    assert card.data.eval_results[0].dataset_name == "CartPole-v1"
    code, out, err = run_main(capsys, "index", "--hub", "hf", "--author", "dave", "--json")
    assert code == 0, err
    assert board("CartPole-v1") == ["dave/dqn-CartPole-v1"]
    code, out, err = run_main(
        capsys, "push", zips["dqn-CartPole-v1"], "--repo-id", "dave/x", "--hub", "hf", "--env", "LunarLander-v2"
    )
    assert code == 2 and "does not play LunarLander-v2" in err.splitlines()[-1]  # after the note on the id


def test_the_files_fetched_are_chosen_and_sized_from_the_listing():
    deeprl_repo = {"config.json": 900, "model.safetensors": 10_000, "README.md": 3000, "replay.mp4": 10 << 20}
    assert model_files(deeprl_repo, "q-lake", sized=True) == {
        f: f for f in ("config.json", "model.safetensors", "README.md")
    }
    course = {"ppo-LunarLander-v2.zip": 150_000, "config.json": 9000, "vec_normalize.pkl": 5000, "README.md": 900}
    assert model_files(course, "ppo-LunarLander-v2", sized=True) == {
        "model.zip": "ppo-LunarLander-v2.zip",
        "vec_normalize.pkl": "vec_normalize.pkl",
        "README.md": "README.md",
    }
    two = {"ppo-LunarLander-v2.zip": 1, "best.zip": 1}
    assert model_files(two, "ppo-LunarLander-v2")["model.zip"] == "ppo-LunarLander-v2.zip"
    with pytest.raises(ValueError, match="none is named after the repo"):
        model_files(two, "other")
    with pytest.raises(ValueError, match="larger than 256 MiB"):
        model_files({"huge.zip": 300 << 20}, "huge", sized=True)


def test_evaluate_a_course_repo_by_its_id(standin, capsys):
    """`deeprl evaluate USER/REPO --hub hf` on a repo package_to_hub wrote (its zip beside SB3's data as
    config.json, which is not deeprl's config): the zip is the model, and the figures are SB3's own."""
    code, out, err = run_main(capsys, "evaluate", "bob/dqn-CartPole-v1", "--hub", "hf", "--json")
    assert code == 0, err
    figures = json.loads(out)
    assert figures["env_id"] == "CartPole-v1" and figures["n_eval_episodes"] == 10
