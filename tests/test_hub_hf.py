"""The Hugging Face backend, with the real huggingface_hub client talking to a local stand-in (tests/hf_standin.py)."""

import json
import sys
from pathlib import Path

import pytest

from deeprl.cli import main
from deeprl.hub import get_hub, resolve_repo
from deeprl.publish import push_model

sys.path.insert(0, str(Path(__file__).parent))
from hf_standin import StandIn  # noqa: E402

TAG = "FrozenLake-v1-4x4-no_slippery"


@pytest.fixture(scope="module")
def lake_run(tmp_path_factory):
    from deeprl.train import train

    return train(
        "qlearning",
        "FrozenLake-v1",
        env_kwargs={"is_slippery": False},
        log_folder=tmp_path_factory.mktemp("logs"),
        show_progress=False,
    ).run_dir


def _point_at(monkeypatch, tmp_path, url):
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_TOKEN", "hf_standin_token")
    # huggingface_hub read HF_ENDPOINT at import: make its constants what they would be had HF_ENDPOINT been set
    # before (as a user does), so that no call, not even its background ones, leaves this machine
    monkeypatch.setattr(hc, "ENDPOINT", url)
    monkeypatch.setattr(hc, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hc, "HF_TOKEN_PATH", str(tmp_path / "no-token-file"))


@pytest.fixture
def standin(monkeypatch, tmp_path):
    with StandIn(token="hf_standin_token") as s:
        _point_at(monkeypatch, tmp_path, s.url)
        yield s


def run_main(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_push_list_download_evaluate_through_the_standin(lake_run, standin, tmp_path, capsys):
    out = push_model(lake_run, "alice/q-lake", hub="hf", n_eval_episodes=10)
    repo = standin.store.repos["alice/q-lake"]
    assert out["revision"] == repo["commits"][-1]["oid"]
    assert out["location"] == f"{standin.url}/alice/q-lake"
    files = repo["commits"][-1]["files"]
    assert {"README.md", "config.json", "results.json", "model.safetensors", "replay.mp4"} <= set(files)
    assert files["model.safetensors"] == (lake_run / "model.safetensors").read_bytes()
    # the real client really went through preupload + NDJSON commit
    assert ("POST", "/api/models/alice/q-lake/commit/main") in standin.store.requests

    hub = get_hub("hf")
    listed = hub.list_models(TAG)
    assert [(m.repo_id, m.revision) for m in listed] == [("alice/q-lake", out["revision"])]
    assert listed[0].pushed_at.tzinfo is not None and "deep-rl-course" in listed[0].tags
    assert hub.list_models("Taxi-v3") == []

    dest = hub.download("alice/q-lake", dest=tmp_path / "dl")
    assert (dest / "model.safetensors").read_bytes() == files["model.safetensors"]
    from huggingface_hub import ModelCard

    (ev,) = ModelCard.load(dest / "README.md").data.eval_results
    assert ev.dataset_name == TAG and ev.metric_value == "1.00 +/- 0.00"

    # the same commands as the local hub, with --hub hf
    code, stdout, err = run_main(capsys, "evaluate", "alice/q-lake", "--hub", "hf", "--json", "--n-eval-episodes", "10")
    assert code == 0, err
    assert json.loads(stdout)["episode_rewards"] == out["results"]["episode_rewards"]
    code, stdout, err = run_main(capsys, "load", "alice/q-lake", "--hub", "hf", "-f", tmp_path / "loaded")
    assert code == 0, err and out["revision"] in stdout

    second = push_model(
        lake_run, "alice/q-lake", hub="hf", commit_message="again", record_video=False, n_eval_episodes=3
    )
    revs = hub.revisions("alice/q-lake")
    assert [r[0] for r in revs] == [second["revision"], out["revision"]] and revs[0][2] == "again"
    old = resolve_repo("alice/q-lake", out["revision"], hub="hf")
    assert json.loads((old / "results.json").read_text())["n_eval_episodes"] == 10


def test_push_cli_to_hf(lake_run, standin, capsys):
    code, stdout, err = run_main(
        capsys, "push", lake_run, "--repo-id", "bob/lake", "--hub", "hf", "--no-video", "--n-eval-episodes", "2"
    )
    assert code == 0, err
    oid = standin.store.repos["bob/lake"]["commits"][-1]["oid"]
    assert oid in stdout and f"{standin.url}/bob/lake" in stdout


def test_missing_token_says_how_to_log_in(lake_run, standin, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    code, _, err = run_main(capsys, "push", lake_run, "--repo-id", "bob/lake", "--hub", "hf")
    assert code == 2 and err.count("\n") == 1
    assert "hf auth login" in err and "HF_TOKEN" in err
    assert standin.store.repos == {}


def test_refused_token_and_unknown_repo(lake_run, standin, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    code, _, err = run_main(
        capsys, "push", lake_run, "--repo-id", "bob/lake", "--hub", "hf", "--no-video", "--n-eval-episodes", "1"
    )
    assert code == 2 and "refused the token" in err and err.count("\n") == 1
    code, _, err = run_main(capsys, "load", "nobody/nothing", "--hub", "hf")
    assert code == 2 and "No repo 'nobody/nothing'" in err and err.count("\n") == 1


def test_unreachable_hub_is_one_sentence(lake_run, monkeypatch, tmp_path, capsys):
    with StandIn() as s:  # take a free port, then close it: nothing listens there any more
        url = s.url
    _point_at(monkeypatch, tmp_path, url)
    code, _, err = run_main(capsys, "load", "alice/x", "--hub", "hf")
    assert code == 2 and err.count("\n") == 1, err
