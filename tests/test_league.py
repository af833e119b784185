"""The Unit 7 league: matchmaking by rating, matches played in the limited child and stored, ratings replayed
from the stored matches, a forfeit, the CSV and Parquet exports, the web pages, and a person playing an agent
in the browser."""

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from deeprl.league.matchmaking import pair_up, pick_opponent

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
}
CARD = "---\nlibrary_name: deeprl\ntags:\n- ML-Agents-SoccerTwos\n- reinforcement-learning\n---\n# {name}\n"
FAST = ["--games", "2", "--max-steps", "30"]


# ---------------------------------------------------------------------------------------------------------
# Matchmaking on scripted ratings

RATINGS = {"a": 1200.0, "b": 1210.0, "c": 1190.0, "d": 1500.0, "e": 1800.0, "f": 1000.0, "g": 2400.0}


def test_opponent_is_one_of_the_n_closest():
    queue = list("bcdef")
    picked = {pick_opponent("a", queue, RATINGS, random.Random(s)) for s in range(200)}
    assert picked == {"b", "c", "f"}  # distances 10, 10, 200; d (300) and e (600) are not among the 3 closest
    picked = {pick_opponent("a", queue, RATINGS, random.Random(s), n_closest=1) for s in range(50)}
    assert picked == {"b"}  # a tie in distance keeps queue order
    picked = {pick_opponent("a", queue, RATINGS, random.Random(s), n_closest=5) for s in range(300)}
    assert picked == {"b", "c", "f", "d"}  # e is 600 away: beyond the default gap of 500


def test_the_rating_gap_bounds_opponents_and_a_lone_model_sits_out():
    assert {pick_opponent("a", list("bcdf"), RATINGS, random.Random(s), max_gap=15) for s in range(50)} == {"b", "c"}
    assert pick_opponent("g", list("abcdef"), RATINGS, random.Random(0)) is None  # 600+ from everyone
    pairs, idle = pair_up(list("gabcdef"), RATINGS, random.Random(0))
    # g and then e (800 from f, the only one left) find nobody within 500; f is left alone in the queue
    assert idle == ["g", "e", "f"] and len(pairs) == 2
    assert all(abs(RATINGS[x] - RATINGS[y]) <= 500 for x, y in pairs)
    # the first queued model is always paired first; each pair is played (on_pair) before the next is made
    seen = []
    pair_up(list("abcdef"), dict(RATINGS), random.Random(1), on_pair=lambda x, y: seen.append(x))
    assert seen[0] == "a"


def test_pairing_a_round_first_gives_the_pairs_of_play_as_you_go():
    """The runner pairs a whole round and then plays its matches side by side: the same pairs as the course's
    pop, play, rate, pop again, because a match moves only the two ratings just taken out of the queue."""
    for seed in range(200):
        r = random.Random(seed)
        models = [f"m{i}" for i in range(r.randint(2, 12))]
        start = {m: r.choice([1000.0, 1150.0, 1200.0, 1240.0, 1500.0, 1900.0]) for m in models}
        kw = {"n_closest": r.randint(1, 4), "max_gap": r.choice([100.0, 300.0, 500.0])}
        moving = dict(start)

        def play(a, b, moving=moving, r=r):
            moving[a] += r.uniform(-40, 40)  # any result: the next picks must not depend on it
            moving[b] += r.uniform(-40, 40)

        as_you_go = pair_up(models, moving, random.Random(seed), on_pair=play, **kw)
        assert pair_up(models, dict(start), random.Random(seed), **kw) == as_you_go, seed


# ---------------------------------------------------------------------------------------------------------
# A real league on a local hub


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny self-play model; the league's entrants are it and copies with scaled weights."""
    from deeprl.train import train

    tmp = tmp_path_factory.mktemp("league-train")
    run = train(
        "selfplay",
        "SoccerTwos",
        overrides=TINY,
        n_timesteps=256,
        seed=3,
        log_folder=tmp,
        env_kwargs={"max_steps": 40},
        device="cpu",
        show_progress=False,
    )
    return run.run_dir


def entrant(src: Path, tmp: Path, name: str, scale: float | None = None, corrupt: bool = False) -> Path:
    from deeprl.modelio import load_model, save_model

    folder = tmp / name.replace("/", "--")
    folder.mkdir()
    config, tensors = load_model(src)
    if scale is not None:
        tensors = {k: np.asarray(v) * scale for k, v in tensors.items()}
    save_model(folder, tensors, config)
    (folder / "README.md").write_text(CARD.format(name=name))
    if corrupt:
        (folder / "model.safetensors").write_bytes(b"\x00 not safetensors")
    return folder


# four models of one policy at different strengths and one that cannot load (a forfeit)
ENTRANTS = {
    "alice/soccer": {},
    "bob/soccer": {"scale": 0.5},
    "carol/soccer": {"scale": 2.0},
    "dave/soccer": {"scale": 0.0},
    "mallory/broken": {"corrupt": True},
}


def push_entrants(trained, tmp, spec):
    from lb_helpers import push_folder

    for name, kw in spec.items():
        push_folder(entrant(trained, tmp, name, **kw), name)


def test_league_round_stores_matches_rates_them_and_exports(trained, tmp_path, cli):
    import pyarrow.parquet as pq

    push_entrants(
        trained,
        tmp_path,
        ENTRANTS,
    )
    p = cli("league", "run", "--rounds", "2", "--every", "0.01s", "--queue-seed", "1", *FAST, "--json")
    assert p.returncode == 0, p.stderr
    rounds = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(rounds) == 2 and rounds[0]["models"] == 5
    played = [m for r in rounds for m in r["matches"]]
    forfeits = [m for m in played if m["forfeit"]]
    assert [m["forfeit"] for m in forfeits] == ["mallory/broken"]  # once: benched at this revision afterwards
    assert "could not be loaded" in forfeits[0]["error"] and not forfeits[0]["rated"]
    assert "mallory/broken" in rounds[1]["benched"]
    rated = [m for m in played if m["rated"]]
    assert rated and all(m["won"] + m["drawn"] + m["lost"] == 2 for m in rated)

    # the ratings are a function of the stored matches: drop them, replay, same numbers
    p = cli("league", "recompute", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["same"] and out["max_difference"] == 0.0 and out["matches"] == len(rated)

    p = cli("league", "table", "--json")
    rows = json.loads(p.stdout)["rows"]
    ranked = [r for r in rows if r["rank"]]
    assert [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
    assert sum(r["elo"] for r in ranked) == pytest.approx(1200.0 * len(ranked))  # Elo moves points, keeps the sum
    broken = next(r for r in rows if r["model"] == "mallory/broken")
    assert broken["rank"] is None and "could not be loaded" in broken["forfeit"]
    assert "forfeited" in cli("league", "table").stdout

    model = ranked[0]["model"]
    h = json.loads(cli("league", "history", model, "--json").stdout)
    assert h["elo"] == pytest.approx(ranked[0]["elo"]) and h["matches"][0]["elo_after"] == pytest.approx(h["elo"])
    assert cli("league", "history", "nobody/nothing").returncode == 2

    p = cli("league", "export", "--out", tmp_path / "out")
    assert p.returncode == 0, p.stderr
    with open(tmp_path / "out" / "soccer_history.csv") as fh:
        history = list(csv.DictReader(fh))
    assert list(history[0]) == ["model1", "model2", "result", "timestamp"] and len(history) == len(rated)
    with open(tmp_path / "out" / "soccer_elo.csv") as fh:
        elo_rows = list(csv.DictReader(fh))
    assert list(elo_rows[0]) == ["rank", "author", "model", "elo", "games_played"]
    assert [r["model"] for r in elo_rows] == [r["model"] for r in ranked]
    table = pq.read_table(tmp_path / "out" / "matches.parquet").to_pylist()
    assert len(table) == len(played) and {"model1", "model2", "revision1", "result", "seed"} <= set(table[0])


def test_a_match_is_reproducible_and_its_result_is_the_sets(trained, tmp_path):
    from deeprl.league.runner import Settings, play_in_child

    a = entrant(trained, tmp_path, "x/a")
    b = entrant(trained, tmp_path, "x/b", scale=0.0)
    s = Settings(games=4, max_steps=40, replays=False)
    first, again = play_in_child(a, b, s), play_in_child(a, b, s)
    assert first == again and "match" in first
    g = first["match"]
    assert g["won"] + g["drawn"] + g["lost"] == 4
    assert g["result"] == (1.0 if g["won"] > g["lost"] else 0.0 if g["won"] < g["lost"] else 0.5)
    assert play_in_child(a, b, Settings(games=4, max_steps=40, seed=1, replays=False)) != {}  # another seed plays


def test_bad_league_arguments_are_one_sentence(cli):
    for args in (["--k", "0"], ["--n-closest", "0"], ["--games", "0"], ["--rounds", "0"], ["--every", "soon"]):
        p = cli("league", "run", *args)
        assert p.returncode == 2 and p.stderr.count("\n") == 1, (args, p.stderr)


# ---------------------------------------------------------------------------------------------------------
# Pages


def test_league_pages_show_table_match_replay_and_history(trained, tmp_path):
    from fastapi.testclient import TestClient

    from deeprl.league.runner import Settings, run_round
    from deeprl.web import create_app

    push_entrants(trained, tmp_path, {"alice/soccer": {}, "bob/soccer": {"scale": 0.0}})
    report = run_round(settings=Settings(games=2, max_steps=20), rng=random.Random(0))
    assert len(report.played) == 1 and report.played[0]["rated"]
    mid = report.played[0]["id"]
    client = TestClient(create_app(watch_interval_s=None))
    page = client.get("/league")
    assert page.status_code == 200 and "alice/soccer" in page.text and "<polyline" in page.text
    page = client.get(f"/league/matches/{mid}")
    assert page.status_code == 200 and f"/league/matches/{mid}/replay.mp4" in page.text
    video = client.get(f"/league/matches/{mid}/replay.mp4")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4" and video.content[4:8] == b"ftyp"
    page = client.get("/league/models/alice/soccer")
    assert page.status_code == 200 and 'id="rating-history"' in page.text
    assert client.get("/league/models/nobody/nothing").status_code == 404
    assert client.get("/league/matches/999").status_code == 404
    api = client.get("/api/league").json()
    assert {r["model"] for r in api["rows"]} == {"alice/soccer", "bob/soccer"}
    assert "script-src 'self'" in client.get("/league/play/alice/soccer").headers["content-security-policy"]


def test_serve_takes_a_league_schedule(cli):
    from deeprl.commands.league import duration

    assert duration("4h") == 14400 and duration("90") == 90 and duration("15m") == 900
    p = cli("serve", "--league-every", "often")
    assert p.returncode == 2 and "--league-every" in p.stderr


# ---------------------------------------------------------------------------------------------------------
# A person against an agent, in a real browser

CHROMIUM = "/usr/bin/chromium"


def until(condition, seconds: float = 30.0):
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the page did not get there in time"
        time.sleep(0.05)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
def test_play_an_agent_with_the_keyboard(trained, tmp_path):
    import socket
    import threading
    import time

    import uvicorn
    from playwright.sync_api import sync_playwright

    from deeprl.web import create_app

    push_entrants(trained, tmp_path, {"alice/soccer": {}})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    srv = uvicorn.Server(
        uvicorn.Config(create_app(watch_interval_s=None), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
            )
            try:
                page = browser.new_page()
                errors = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"http://127.0.0.1:{port}/league/play/alice/soccer")
                # polled from here: the page's CSP (no eval) rules out Playwright's in-page wait_for_function
                until(lambda: page.evaluate("() => window.deeprlPlay && window.deeprlPlay.frames") or 0)
                start = page.evaluate("() => window.deeprlPlay.last.pos[0]")
                page.keyboard.down("ArrowUp")  # run forward: the player's position must change

                def moved():
                    p = page.evaluate("() => window.deeprlPlay.last.pos[0]")
                    return np.hypot(p[0] - start[0], p[1] - start[1]) > 1.0

                until(moved)
                page.keyboard.up("ArrowUp")
                page.keyboard.down("a")
                frames = page.evaluate("() => window.deeprlPlay.frames")
                until(lambda: page.evaluate("() => window.deeprlPlay.frames") > frames + 5)
                page.keyboard.up("a")
                assert "Blue" in page.inner_text("#score") and "Purple" in page.inner_text("#score")
                assert "Playing" in page.inner_text("#status") and not errors
            finally:
                browser.close()
    finally:
        srv.should_exit = True
        thread.join(10)
