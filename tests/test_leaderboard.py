"""Indexer on a temporary hub with good, bad and lying models; ranking order and ties; the leaderboard command."""

import json
import shutil

import pytest

from deeprl import db
from deeprl.leaderboard import claim_is_flagged, index, leaderboard, model_detail, ranking, unranked
from lb_helpers import add_model, push, push_corrupt, push_lying, train_frozenlake

try:  # the tune tests' throwaway PostgreSQL server (Debian's postgresql package), shared rather than copied
    from test_tune import postgres_url  # noqa: F401
except Exception:  # optuna or the tune module missing: the PostgreSQL test skips
    postgres_url = None


@pytest.fixture
def good_hub(tmp_path):
    run = train_frozenlake(tmp_path)
    push(run, "alice/q-FrozenLake")
    return run


def test_index_good_bad_and_lying_models(good_hub):
    push_lying("alice/q-FrozenLake", "mallory/q-FrozenLake-liar")
    push_corrupt("alice/q-FrozenLake", "bob/q-FrozenLake-broken")
    report = index(timeout_s=120)
    assert report.listed == 3 and report.evaluated == 3  # the broken model did not stop the others
    env = "FrozenLake-v1-4x4-no_slippery"
    with db.session() as s:
        rows, total = ranking(s, env)
        errors = unranked(s, env)
    by_repo = {r["repo_id"]: r for r in rows}
    assert total == 2 and [r["repo_id"] for r in rows] == ["alice/q-FrozenLake", "mallory/q-FrozenLake-liar"]
    good, liar = by_repo["alice/q-FrozenLake"], by_repo["mallory/q-FrozenLake-liar"]
    assert good["result"] == 1.0 and not good["flagged"] and good["claimed_result"] == pytest.approx(1.0)
    # the liar's card still claims 1.00 +/- 0.00; it is ranked by what it really does, and flagged
    assert liar["result"] == 0.0 and liar["flagged"] and liar["claimed_result"] == pytest.approx(1.0)
    assert "claims mean 1.00" in liar["flag_reason"]
    assert [e["repo_id"] for e in errors] == ["bob/q-FrozenLake-broken"]
    assert "safetensors" in errors[0]["error"].lower() or "corrupt" in errors[0]["error"].lower()
    assert any("bob/q-FrozenLake-broken" in e for e in report.errors)


def test_index_is_incremental_and_ranks_the_latest_revision(good_hub, tmp_path):
    first = index(timeout_s=120)
    assert first.evaluated == 1
    again = index(timeout_s=120)
    assert again.evaluated == 0 and again.skipped == 1  # unchanged revision: not evaluated again
    # a re-push with a worse model: the board follows the newest revision, the old one stays in the history
    push_lying("alice/q-FrozenLake", "alice/q-FrozenLake")
    third = index(timeout_s=120)
    assert third.evaluated == 1 and third.skipped == 1
    with db.session() as s:
        rows, _ = ranking(s, "FrozenLake-v1-4x4-no_slippery")
        detail = model_detail(s, "alice/q-FrozenLake")
    assert rows[0]["result"] == 0.0 and rows[0]["flagged"]
    assert [r["result"] for r in detail["revisions"]] == [0.0, 1.0] and detail["revisions"][0]["latest"]


def test_index_survives_timeouts_and_removed_repos(good_hub):
    report = index(timeout_s=0.05)
    assert report.evaluated == 1 and "longer than" in report.errors[0]
    with db.session() as s:
        assert "longer than" in unranked(s, "FrozenLake-v1-4x4-no_slippery")[0]["error"]
    from deeprl.paths import home

    shutil.rmtree(home() / "hub" / "alice" / "q-FrozenLake")
    assert index().removed == 1
    assert leaderboard()["rows"] == []


def test_flag_rule():
    assert claim_is_flagged(None, None, 1.0, 0.0) is None  # no claim, nothing to flag
    assert claim_is_flagged(7.54, 2.71, 7.52, 2.70) is None  # same figures, two decimals
    assert claim_is_flagged(7.9, 2.5, 7.5, 2.7) is None  # another seed: well within the stds
    assert claim_is_flagged(1.0, 0.0, 0.0, 0.0)  # nothing works, card says perfect
    assert claim_is_flagged(300.0, 5.0, 150.0, 40.0)  # double the real mean
    assert claim_is_flagged(-200.0, 5.0, 150.0, 40.0)  # wrong the other way too
    assert claim_is_flagged(200.0, 0.0, 200.0, 0.0) is None
    assert claim_is_flagged(204.0, 0.0, 200.0, 0.0) is None  # within 5 % of the mean
    assert claim_is_flagged(220.0, 0.0, 200.0, 0.0)


def test_ranking_order_ties_search_sort_and_pages():
    env = "Taxi-v3"
    add_model("carol/taxi", env, 7.0, pushed=5)
    add_model("dave/taxi", env, 7.0, pushed=1)  # same result, pushed first: ranks above carol
    add_model("erin/taxi", env, 8.0, pushed=9)
    add_model("frank/taxi", env, 2.0, pushed=0)
    add_model("gina/taxi", env, 9.0, pushed=3, active=False)  # gone from the hub: not ranked
    add_model("hank/taxi", env, 0.0, pushed=2, status="error", error="corrupt")
    add_model("ivan/frozen", "FrozenLake-v1-4x4-no_slippery", 1.0)
    with db.session() as s:
        rows, total = ranking(s, env)
        assert total == 4 and [r["repo_id"] for r in rows] == ["erin/taxi", "dave/taxi", "carol/taxi", "frank/taxi"]
        assert [r["rank"] for r in rows] == [1, 2, 3, 4]
        found, n = ranking(s, env, user="CAR")  # search is case-insensitive and keeps the global rank
        assert n == 1 and found[0]["rank"] == 3
        page2, n = ranking(s, env, offset=2, limit=2)
        assert n == 4 and [r["rank"] for r in page2] == [3, 4]
        by_push, _ = ranking(s, env, sort="pushed_at", order="asc")
        assert [r["repo_id"] for r in by_push] == ["frank/taxi", "dave/taxi", "carol/taxi", "erin/taxi"]
        by_user, _ = ranking(s, env, sort="user", order="desc")
        assert by_user[0]["user"] == "frank"
        assert [e["repo_id"] for e in unranked(s, env)] == ["hank/taxi"]
    board = leaderboard(env)
    assert board["env"] == env and list(board["rows"][0]) == [
        "rank",
        "repo_id",
        "user",
        "result",
        "mean_reward",
        "std_reward",
        "claimed_result",
        "flagged",
        "pushed_at",
    ]
    everything = leaderboard()
    assert everything["env"] is None and {r["env"] for r in everything["rows"]} == {
        env,
        "FrozenLake-v1-4x4-no_slippery",
    }


def test_leaderboard_command_indexes_then_prints(good_hub, cli):
    out = cli("leaderboard", "--env", "FrozenLake-v1-4x4-no_slippery", "--json")
    assert out.returncode == 0, out.stderr
    board = json.loads(out.stdout)
    assert board["env"] == "FrozenLake-v1-4x4-no_slippery"
    assert [(r["rank"], r["repo_id"], r["user"], r["result"]) for r in board["rows"]] == [
        (1, "alice/q-FrozenLake", "alice", 1.0)
    ]
    text = cli("leaderboard", "--no-index")
    assert text.returncode == 0 and "alice/q-FrozenLake" in text.stdout and "1.00 +/- 0.00" in text.stdout
    bad = cli("leaderboard", "--env", "Taxi-v9", "--no-index")
    assert bad.returncode == 2 and "Taxi-v3" in bad.stderr and "Traceback" not in bad.stderr


def test_index_the_hf_hub_through_the_standin(tmp_path, monkeypatch):
    from deeprl.publish import push_model
    from hf_standin import StandIn
    from test_hub_hf import _point_at

    with StandIn(token="hf_standin_token") as standin:
        _point_at(monkeypatch, tmp_path, standin.url)
        push_model(train_frozenlake(tmp_path), "alice/q-lake", hub="hf", record_video=False)
        report = index("hf", timeout_s=120)
        assert (report.listed, report.evaluated, report.errors) == (1, 1, [])
        board = leaderboard("FrozenLake-v1-4x4-no_slippery", hub="hf")
        assert [(r["repo_id"], r["result"]) for r in board["rows"]] == [("alice/q-lake", 1.0)]
        assert leaderboard(hub="local")["rows"] == []  # each hub has its own board


def test_evaluation_child_has_a_memory_limit(good_hub):
    from deeprl.hub import resolve_repo
    from deeprl.leaderboard import evaluate_folder

    out = evaluate_folder(resolve_repo("alice/q-FrozenLake"), memory_mb=40)  # too little even to start Python
    assert out["verdict"] == {"status": "error", "error": "the evaluation ran out of memory (limit 40 MiB)"}


@pytest.mark.skipif(postgres_url is None, reason="the PostgreSQL fixture of tests/test_tune.py is unavailable")
def test_ranking_and_progress_on_postgresql(monkeypatch, request):
    """The same queries (window ranking, search, counts) on a real PostgreSQL server, as a classroom would run."""
    pytest.importorskip("psycopg")
    url = request.getfixturevalue("postgres_url")
    monkeypatch.setenv("DEEPRL_DATABASE_URL", url)
    try:
        add_model("kim/taxi", "Taxi-v3", 7.0, pushed=5)
        add_model("lee/taxi", "Taxi-v3", 7.0, pushed=1)
        add_model("max/taxi", "Taxi-v3", 9.0, pushed=9, claimed=(9.5, 0.0))
        board = leaderboard("Taxi-v3")
        assert [(r["rank"], r["repo_id"]) for r in board["rows"]] == [(1, "max/taxi"), (2, "lee/taxi"), (3, "kim/taxi")]
        assert board["rows"][0]["pushed_at"].endswith("+00:00")
        with db.session() as s:
            assert ranking(s, "Taxi-v3", user="KI")[0][0]["rank"] == 3
        from deeprl.certification import progress

        assert progress("lee")["passed"] == 1
    finally:
        db.dispose()
