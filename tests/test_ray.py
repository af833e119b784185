"""deeprl.dispatch: league matches and leaderboard evaluations as independent jobs, in the local pool and on a real
two-node Ray cluster started on this machine; the same jobs give the same rows either way."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from deeprl.dispatch import DispatchOptions, LocalPool, dispatching
from deeprl.leaderboard.sandbox import EvalJob, evaluate_job, evaluation_failed
from deeprl.league.runner import MatchJob, Settings, match_failed, play_match

FAST = {"games": 2, "max_steps": 30}
COMPARED = (  # an Evaluation row's figures (its timestamps and the seconds it took are not)
    "status",
    "env",
    "algo",
    "mean_reward",
    "std_reward",
    "result",
    "n_eval_episodes",
    "error",
    "flagged",
    "flag_reason",
    "claimed_env",
    "claimed_mean",
    "claimed_std",
    "card_html",
    "card_meta",
    "files",
)


def until(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds:g} s"
        time.sleep(0.1)
    return value


# ---------------------------------------------------------------------------------------------------------
# The pool alone (no Ray needed)


def test_pool_keeps_order_and_a_failing_job_is_its_row():
    bad = MatchJob({}, {}, None)  # no settings: the job raises
    jobs = [EvalJob(None, error=f"why {i}") for i in range(5)]
    for d in (LocalPool(1), LocalPool(3)):
        try:
            rows = list(d.map(evaluate_job, jobs, evaluation_failed))
            assert [r["verdict"]["error"] for r in rows] == [f"why {i}" for i in range(5)]
            assert list(d.map(evaluate_job, [], evaluation_failed)) == []
            out = list(
                d.map(play_match, [bad, MatchJob(None, None, Settings(), unfetched=((2, "gone"),))], match_failed)
            )
        finally:
            d.close()
        assert out[0] == {
            "error": "the match could not be played (AttributeError: 'NoneType' object has no attribute 'games')"
        }
        assert out[1]["forfeit"] == [2] and out[1]["error"] == "gone"


def test_a_pool_closed_early_stops_its_limited_children(tmp_path):
    import threading

    from deeprl.leaderboard import sandbox

    def job(i: int) -> dict:
        (tmp_path / str(i)).mkdir()
        child = sandbox.run_child(["-c", "import time; time.sleep(300)"], tmp_path / str(i), timeout_s=600)
        return {"returncode": child.returncode}

    pool, out = LocalPool(2), []
    consumer = threading.Thread(target=lambda: out.extend(pool.map(job, [0, 1, 2], lambda j, why: {"failed": why})))
    consumer.start()
    running = until(
        lambda: [p for ps in list(sandbox._LIVE.values()) for p in ps] if len(sandbox._LIVE) == 2 else [],
        60,
        "two children starting",
    )
    pool.close()  # the caller gives up (Ctrl-C, an error): the running children are killed, the queued job dropped
    consumer.join(60)
    assert not consumer.is_alive() and not sandbox._LIVE
    assert out[:2] == [{"returncode": -9}, {"returncode": -9}] and "Cancelled" in out[2]["failed"]
    assert all(
        not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2] for pid in running
    )


def test_dispatch_options_and_ray_address_variable(monkeypatch, cli):
    from deeprl.errors import UserError

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert DispatchOptions.resolve() == DispatchOptions(None, None)
    assert DispatchOptions.resolve(workers=2).describe() == "local pool of 2"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert DispatchOptions.resolve().ray == "10.0.0.5:6379"  # the variable stands in for --ray
    assert DispatchOptions.resolve("head:6379").ray == "head:6379"  # --ray wins
    with pytest.raises(UserError):
        DispatchOptions.resolve(workers=2)  # a pool size means nothing on a cluster
    monkeypatch.delenv("RAY_ADDRESS")
    with pytest.raises(UserError):
        DispatchOptions.resolve(workers=0)
    for args in (["league", "run", "--once", "--workers", "0"], ["index", "--workers", "-1"]):
        p = cli(*args)
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--workers" in p.stderr, (args, p.stderr)


def test_serve_hands_the_option_to_its_index_and_league(monkeypatch):
    from deeprl.cli import build_parser
    from deeprl.commands.serve import build_app

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    args = ["serve", "--no-index", "--watch-interval", "0", "--league-every", "4h"]
    app = build_app(build_parser().parse_args([*args, "--workers", "3"]))
    assert app.state.refresher.index_kwargs["dispatch"] == DispatchOptions(workers=3)
    assert app.state.league.settings.dispatch == DispatchOptions(workers=3)
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")  # connected only when a round or an index run starts
    app = build_app(build_parser().parse_args(args))
    assert (
        app.state.league.settings.dispatch
        == app.state.refresher.index_kwargs["dispatch"]
        == DispatchOptions("head:6379")
    )


def test_index_in_the_pool_equals_one_by_one(tmp_path):
    from lb_helpers import push, push_corrupt, push_lying, train_frozenlake

    push(train_frozenlake(tmp_path), "alice/q-FrozenLake")
    push_lying("alice/q-FrozenLake", "mallory/q-FrozenLake-liar")
    push_corrupt("alice/q-FrozenLake", "bob/q-FrozenLake-broken")
    one = index_rows(tmp_path / "one.db", DispatchOptions(workers=1))
    pool = index_rows(tmp_path / "pool.db", DispatchOptions(workers=2))
    assert pool == one and len(one) == 3
    assert [r["status"] for r in one.values()].count("ok") == 2


def index_rows(path: Path, where: DispatchOptions) -> dict:
    """Index the hub into a fresh database at `path` with the jobs run `where`; {repo: compared fields}."""
    from sqlalchemy import select

    from deeprl import db
    from deeprl.db import Evaluation, Repo
    from deeprl.leaderboard import index

    url = f"sqlite:///{path}"
    report = index(url=url, timeout_s=120, dispatch=where)
    assert report.evaluated == report.listed
    with db.session(url) as s:
        found = s.execute(select(Repo.repo_id, Evaluation).join(Evaluation, Evaluation.repo_pk == Repo.id)).all()
        return {repo: {k: getattr(e, k) for k in COMPARED} for repo, e in found}


# ---------------------------------------------------------------------------------------------------------
# A real two-node Ray cluster on this machine

NO_RAY = importlib.util.find_spec("ray") is None
needs_ray = pytest.mark.skipif(
    NO_RAY, reason="Ray is not installed (pip install 'deeprl[ray]'); the pool is tested above"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(groups: set[int]) -> list[str]:
    """The processes (not zombies) in these process groups: what the test's `ray start`s left running."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            state, _, pgid = stat.rsplit(")", 1)[1].split()[:3]
            if int(pgid) in groups and state != "Z":
                out.append(f"{pid} {Path(f'/proc/{pid}/cmdline').read_bytes()[:80]!r}")
        except (OSError, ValueError, IndexError):
            continue
    return out


@contextmanager
def two_node_cluster(cpus_per_node: int = 1, connect: bool = True) -> Iterator[str]:
    """`ray start --head` plus a second node (`ray start --address`) on this machine, `cpus_per_node` CPUs each,
    loopback only, in their own temporary folder and process groups; yields the head's address (connected to it
    with `connect`). Everything they started is gone afterwards (benchmarks/bench_dispatch.py uses it too)."""
    import ray

    ray_cli = str(Path(sys.executable).with_name("ray"))
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    common = [f"--num-cpus={cpus_per_node}", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    starts = [
        [
            ray_cli,
            "start",
            "--head",
            f"--port={port}",
            f"--temp-dir={temp}",
            "--include-dashboard=false",
            f"--dashboard-port={free_port()}",
            f"--ray-client-server-port={free_port()}",
            *common,
        ],
        [ray_cli, "start", f"--address={address}", *common],
    ]
    groups: set[int] = set()
    try:
        for args in starts:
            # its own session: its pid is the process group of every daemon it leaves behind
            p = subprocess.Popen(
                args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
            )
            groups.add(p.pid)
            out, _ = p.communicate(timeout=120)
            assert p.returncode == 0, out.decode(errors="replace")[-2000:]
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        until(lambda: sum(n["Alive"] for n in ray.nodes()) == 2, 60, "the second node joining")
        until(lambda: ray.cluster_resources().get("CPU") == 2 * cpus_per_node, 60, "the CPUs showing")
        if not connect:
            ray.shutdown()
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for g in groups:
            try:
                os.killpg(g, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5  # a grace period, as `ray stop` gives (it would stop every cluster here)
        while alive(groups) and time.monotonic() < deadline:
            time.sleep(0.1)
        for g in groups:
            try:
                os.killpg(g, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # SIGTERM, then SIGKILL for what was left after 5 s: none of the processes the test started may remain
        until(lambda: not alive(groups), 20, "the cluster's processes ending")
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    """A two-node cluster on this machine, one CPU a node, this process connected to it."""
    with two_node_cluster() as address:
        yield address


@pytest.fixture(scope="module")
def soccer(tmp_path_factory):
    """One tiny self-play SoccerTwos model (test_league's settings)."""
    from deeprl.train import train
    from test_league import TINY

    run = train(
        "selfplay",
        "SoccerTwos",
        overrides=TINY,
        n_timesteps=256,
        seed=3,
        log_folder=tmp_path_factory.mktemp("ray-train"),
        env_kwargs={"max_steps": 40},
        device="cpu",
        show_progress=False,
    )
    return run.run_dir


@needs_ray
def test_league_on_a_ray_cluster_equals_the_local_pool(cluster, soccer, tmp_path, cli):
    from deeprl.league.runner import replay_dir, run_round
    from test_league import ENTRANTS, push_entrants

    push_entrants(
        soccer,
        tmp_path,
        ENTRANTS,
    )
    pool = run_round(
        url=f"sqlite:///{tmp_path / 'pool.db'}",
        settings=Settings(**FAST, replays=False, dispatch=DispatchOptions(workers=2)),
        rng=random.Random(1),
    )
    assert pool.ran_on == "local pool (2)" and len(pool.played) == 2
    assert [m["forfeit"] for m in pool.played].count("mallory/broken") == 1  # a failing model is its own row

    # the same round through the command, one Ray task per match on the two nodes, replays coming back as bytes
    p = cli(
        "league", "run", "--once", "--ray", cluster, "--queue-seed", "1", "--games", "2", "--max-steps", "30", "--json"
    )
    assert p.returncode == 0, p.stderr
    on_ray = json.loads(p.stdout)
    assert on_ray["ran_on"] == "Ray (2 CPUs)"
    assert on_ray["matches"] == pool.played and on_ray["idle"] == pool.idle
    rated = [m for m in on_ray["matches"] if m["rated"]]
    assert rated and all((replay_dir() / f"{m['id']}.mp4").read_bytes()[4:8] == b"ftyp" for m in rated)

    # the jobs themselves, side by side: the same outcome for every match, a job that raises is its own row
    from deeprl.hub import get_hub
    from deeprl.leaderboard.sandbox import pack

    hub = get_hub("local")
    files = {m: pack(hub.download(m)) for m in ("alice/soccer", "bob/soccer", "carol/soccer")}
    s = Settings(**FAST, seed=7)
    jobs = [
        MatchJob(files["carol/soccer"], files["alice/soccer"], s, replay=True),
        MatchJob(files["bob/soccer"], files["carol/soccer"], None),  # no settings: raises
    ]
    results = {}
    for where in (DispatchOptions(workers=2), DispatchOptions(ray=cluster)):
        with dispatching(where) as d:
            results[d.name] = list(d.map(play_match, jobs, match_failed))
    local, remote = results["local pool (2)"], results["Ray (2 CPUs)"]
    assert all(r["replay_mp4"][4:8] == b"ftyp" for r in (local[0], remote[0]))  # the video travels back as bytes
    same = [{k: v for k, v in r.items() if k not in ("seconds", "replay_mp4")} for r in local]
    assert [{k: v for k, v in r.items() if k not in ("seconds", "replay_mp4")} for r in remote] == same
    m = local[0]["match"]
    assert m["replay"] == "replay.mp4" and m["won"] + m["drawn"] + m["lost"] == 2
    assert local[1]["error"].startswith("the match could not be played (AttributeError")


@needs_ray
def test_leaderboard_evaluations_on_a_ray_cluster_equal_the_local_pool(cluster, tmp_path):
    from lb_helpers import push, push_corrupt, push_lying, train_frozenlake

    push(train_frozenlake(tmp_path), "alice/q-FrozenLake")
    push_lying("alice/q-FrozenLake", "mallory/q-FrozenLake-liar")
    push_corrupt("alice/q-FrozenLake", "bob/q-FrozenLake-broken")
    pool = index_rows(tmp_path / "pool.db", DispatchOptions(workers=2))
    on_ray = index_rows(tmp_path / "ray.db", DispatchOptions(ray=cluster))
    assert on_ray == pool and len(pool) == 3
    assert pool["mallory/q-FrozenLake-liar"]["flagged"] and pool["bob/q-FrozenLake-broken"]["status"] == "error"
