"""Watching two pushed models play each other live (issue 18 item 5): the play page's WebSocket and drawing, both
teams driven by their models, each in its own limited child; the league's seed makes the game the same every time
it is watched, which is also how the tests see that no key from the page moves a player."""

import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pytest

from test_league import CHROMIUM, push_entrants, trained  # noqa: F401 (trained: the fixture, used by name)
from test_play_child import children, next_message, server, until

BLUE, PURPLE = "alice/soccer", "bob/soccer"
PLAYERS = {BLUE: {}, PURPLE: {"scale": 0.5}, "mallory/broken": {"corrupt": True}}


@contextmanager
def watch(port: int, blue: str, purple: str):
    """The watch page's WebSocket, opened as the page opens it (same origin)."""
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{port}/league/watch/ws?" + urlencode({"blue": blue, "purple": purple})
    with connect(url, origin=f"http://127.0.0.1:{port}", proxy=None, open_timeout=30) as ws:
        yield ws


def record(port: int, until_t: float) -> dict[float, dict]:
    """The frames of a watched game up to `until_t` seconds, keyed by game time, with key presses sent from the
    start (the server must drop them)."""
    frames = {}
    with watch(port, BLUE, PURPLE) as ws:
        assert next_message(ws, "hello")["hello"]["human"] is False
        ws.send(json.dumps({"keys": ["up", "left", "strafe_left"]}))
        while not frames or max(frames) < until_t:
            msg = next_message(ws, "pos")
            frames[msg["t"]] = msg
    return frames


@contextmanager
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        try:
            yield browser
        finally:
            browser.close()


def test_league_pages_link_to_watching_a_pair(tmp_path):
    """Each stored match, each model's matches and a form on the league page lead to the watch page; a bad pair
    of names is one sentence, on the page and on the socket."""
    from fastapi.testclient import TestClient

    from deeprl import db
    from deeprl.league.runner import Settings, store_match
    from deeprl.web import create_app

    with db.session() as s:
        won = {"match": {"won": 2, "drawn": 0, "lost": 0, "result": 1.0}}
        mid = store_match(s, "local", BLUE, PURPLE, None, None, won, Settings(), 1.0).id
    client = TestClient(create_app(watch_interval_s=None))
    link = f"/league/watch?blue={BLUE}&amp;purple={PURPLE}"
    league = client.get("/league").text
    assert link in league and 'action="/league/watch"' in league and '<select name="purple">' in league
    assert link in client.get(f"/league/matches/{mid}").text
    assert link in client.get(f"/league/models/{BLUE}").text
    page = client.get("/league/watch", params={"blue": BLUE, "purple": PURPLE})
    assert page.status_code == 200 and 'data-mode="watch"' in page.text
    assert 'data-ws="/league/watch/ws?blue=alice%2Fsoccer&amp;purple=bob%2Fsoccer"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/league/watch", params={"blue": "../etc", "purple": PURPLE}).status_code == 422
    with client.websocket_connect("/league/watch/ws?blue=alice%2Fsoccer%0A&purple=bob%2Fsoccer") as ws:
        assert ws.receive_json() == {"error": "Give two model names, ?blue=NS/NAME&purple=NS/NAME."}


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
def test_watch_two_models_live_and_no_key_moves_a_player(trained, tmp_path):  # noqa: F811 (the fixture)
    push_entrants(trained, tmp_path, PLAYERS)
    with server() as port, chromium() as browser, ThreadPoolExecutor(1) as pool:
        # the same pair over a bare socket at the same time, sending keys the server must drop
        reference = pool.submit(record, port, 4.0)
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{port}/league/watch?" + urlencode({"blue": BLUE, "purple": PURPLE}))
        # polled from here: the page's CSP (no eval) rules out Playwright's in-page wait_for_function
        until(lambda: page.evaluate("() => window.deeprlPlay && window.deeprlPlay.frames") or 0)
        page.click("#field")
        for key in ("ArrowUp", "w", "a", "q"):  # held down: the page sends nothing and nobody moves for them
            page.keyboard.down(key)
        until(lambda: page.evaluate("() => window.deeprlPlay.frames") >= 15)
        seen = page.evaluate("() => window.deeprlPlay.last")
        assert "Blue" in page.inner_text("#score") and "Purple" in page.inner_text("#score")
        assert page.inner_text("#status").startswith("Live: ") and page.inner_text("#status").endswith(" s left.")
        frames = reference.result(timeout=120)
        assert seen["t"] in frames, (seen["t"], max(frames))
        # the league's seed: the watched game is the same game, whoever pressed what
        same = frames[seen["t"]]
        assert (seen["pos"], seen["angle"], seen["ball"], seen["score"]) == (
            same["pos"],
            same["angle"],
            same["ball"],
            same["score"],
        )
        moving = [frames[t]["pos"] for t in sorted(frames)]
        assert moving[0] != moving[-1]  # both models play: the players move
        assert not errors
    until(lambda: not children())


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
def test_a_model_that_cannot_play_ends_the_watched_game(trained, tmp_path):  # noqa: F811 (the fixture)
    push_entrants(trained, tmp_path, PLAYERS)
    with server() as port:
        with chromium() as browser:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/league/watch?" + urlencode({"blue": BLUE, "purple": "mallory/broken"}))
            until(lambda: "cannot play" in page.inner_text("#status"))
            assert page.inner_text("#status").startswith("mallory/broken cannot play: its model could not be loaded")
            assert page.evaluate("() => window.deeprlPlay.frames") == 0
        until(lambda: not children())  # the blue model's child, loaded, is closed with the game
        # a child killed mid-game (as the kernel kills one that eats memory) ends the game naming its model
        with watch(port, BLUE, PURPLE) as ws:
            next_message(ws, "pos")
            pids = until(lambda: len(children()) == 2 and children())
            os.kill(pids[0], signal.SIGKILL)
            msg = next_message(ws, "error")
        model, _, why = msg["error"].partition(" stopped playing: ")
        assert model in (BLUE, PURPLE) and why.startswith("its process was killed (signal 9)"), msg
        until(lambda: not children())  # the other model's child is closed too


def test_the_league_page_offers_the_pair_being_played(trained, tmp_path):  # noqa: F811
    """The runner tells whoever listens which pairs of its round are still to be stored; the league page offers to
    watch them live while they play, and nothing once the round is over."""
    import random

    from fastapi.testclient import TestClient

    from deeprl.league.runner import Settings, run_round
    from deeprl.web import create_app

    push_entrants(trained, tmp_path, {"alice/soccer": {}, "bob/soccer": {"scale": 0.0}})
    seen: list = []
    run_round(settings=Settings(games=2, max_steps=20, replays=False), rng=random.Random(0), on_pairs=seen.append)
    assert len(seen) == 3 and len(seen[0]) == 1 and seen[1:] == [[], []], seen
    app = create_app(watch_interval_s=None, league_every_s=3600)
    client = TestClient(app)  # no lifespan: the scheduler is not started
    sched = app.state.league
    a, b = seen[0][0]
    sched.playing = [(a, b)]
    page = client.get("/league").text
    assert 'id="now-playing"' in page and f"/league/watch?blue={a}&amp;purple={b}" in page
    assert client.get("/api/league").json()["league"]["playing"] == [[a, b]]
    sched.playing = []
    assert 'id="now-playing"' not in client.get("/league").text
