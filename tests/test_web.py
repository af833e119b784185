"""The web app through httpx (FastAPI's TestClient): pages, JSON API, file serving, card safety, refresh."""

import os
import threading

import pytest
from fastapi.testclient import TestClient

from deeprl import certification as cert
from deeprl.hub import get_hub
from lb_helpers import PASSING, add_model, add_passing, push, push_folder, staged_copy, train_frozenlake

FL = "FrozenLake-v1-4x4-no_slippery"
EVIL = """---
tags: [reinforcement-learning]
---
# Totally safe model

<script>alert('card')</script>

An image: <img src=x onerror=alert(1)> and a [link](javascript:alert(2)).

| a | b |
|---|---|
| 1 | 2 |
"""


@pytest.fixture
def site(tmp_path):
    """A hub with a real model (with replay) and a card full of HTML, both 'indexed', plus synthetic rows."""
    run = train_frozenlake(tmp_path)
    push(run, "alice/q-FrozenLake", video=True)
    folder = staged_copy("alice/q-FrozenLake")
    (folder / "README.md").write_text(EVIL)
    push_folder(folder, "mallory/evil-card")
    hub = get_hub("local")
    for repo_id, result, pushed in (("alice/q-FrozenLake", 1.0, 10), ("mallory/evil-card", 1.0, 20)):
        add_model(repo_id, FL, result, std=0.0, pushed=pushed, revision=hub.revisions(repo_id)[0][0])
    for i in range(5):
        add_model(f"user{i}/taxi", "Taxi-v3", float(i), pushed=i)
    add_model("zed/broken", "Taxi-v3", 0.0, status="error", error="model.safetensors is corrupt")
    from deeprl.web import create_app

    with TestClient(create_app()) as client:
        yield client


def test_pages(site):
    home = site.get("/")
    assert home.status_code == 200 and "Taxi-v3" in home.text and FL in home.text
    assert "default-src 'self'" in home.headers["content-security-policy"]
    board = site.get("/leaderboard/Taxi-v3", params={"per_page": 2, "page": 2})
    assert board.status_code == 200 and "page 2 / 3" in board.text
    assert "user2/taxi" in board.text and "user1/taxi" in board.text and "user4/taxi" not in board.text
    assert "zed/broken" in board.text and "corrupt" in board.text  # listed with its reason, not ranked
    found = site.get("/leaderboard/Taxi-v3", params={"user": "USER3"})
    assert "user3/taxi" in found.text and "user2/taxi" not in found.text
    asc = site.get("/leaderboard/Taxi-v3", params={"sort": "result", "order": "asc"}).text
    assert asc.index("user0/taxi") < asc.index("user4/taxi")
    assert site.get("/leaderboard/Nope-v0").status_code == 404
    assert site.get("/leaderboard/Taxi-v3", params={"sort": "evil"}).status_code == 422
    assert site.get("/users/user3").status_code == 200


def test_api(site):
    board = site.get("/api/leaderboard/Taxi-v3", params={"per_page": 2}).json()
    assert (board["env"], board["total"], board["pages"]) == ("Taxi-v3", 5, 3)
    assert [r["repo_id"] for r in board["rows"]] == ["user4/taxi", "user3/taxi"]
    assert {"rank", "repo_id", "user", "result", "mean_reward", "std_reward", "claimed_result", "flagged",
            "pushed_at"} <= set(board["rows"][0])
    envs = {e["env"]: e for e in site.get("/api/envs").json()}
    assert envs["Taxi-v3"]["models"] == 5 and envs["Taxi-v3"]["unranked"] == 1 and envs[FL]["users"] == 2
    model = site.get("/api/models/alice/q-FrozenLake").json()
    assert model["rank"] == 1 and model["video_url"] and {"README.md", "replay.mp4"} <= {f["path"] for f in
                                                                                         model["files"]}
    assert site.get("/api/models/alice/nope").status_code == 404
    assert site.get("/api/leaderboard/Taxi-v3", params={"per_page": 0}).status_code == 422
    schema = site.get("/openapi.json").json()
    assert {"/api/envs", "/api/leaderboard/{env}", "/api/models/{ns}/{name}", "/api/users/{user}/progress",
            "/api/refresh"} <= set(schema["paths"])
    assert not any(p.startswith(("/models", "/users", "/leaderboard")) for p in schema["paths"])


def test_model_page_card_is_text_and_video_plays(site):
    page = site.get("/models/mallory/evil-card")
    assert page.status_code == 200
    html = page.text
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert "<img src=x" not in html and "onerror=alert(1)&gt;" in html  # shown as text, not an attribute
    assert "javascript:" not in html and "<table>" in html
    page = site.get("/models/alice/q-FrozenLake").text
    assert '<video id="replay"' in page
    src = page.split('<source src="')[1].split('"')[0]
    video = site.get(src)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4" and video.content[4:8] == b"ftyp"
    part = site.get(src, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100


def test_file_paths_are_validated(site):
    from deeprl.paths import home

    base = "/models/alice/q-FrozenLake/files/"
    assert site.get(base + "config.json").status_code == 200
    os.symlink("/etc/passwd", home() / "hub" / "alice" / "q-FrozenLake" / "passwd")
    for bad in ("%2e%2e/%2e%2e/mallory/evil-card/README.md", "..%2f..%2fmallory%2fevil-card%2fREADME.md",
                ".git/config", "%2fetc%2fpasswd", "passwd", "nothing.bin", "logs/..%2f..%2f..%2fdeeprl.db"):
        assert site.get(base + bad).status_code == 404, bad
    assert site.get(base + "config.json", params={"revision": "0" * 40}).status_code == 404  # not indexed
    assert site.get(base + "config.json", params={"revision": "HEAD~1"}).status_code == 422
    assert site.get("/models/..%2f..%2fetc/passwd").status_code in (404, 422)
    assert site.get("/models/a..b/c").status_code in (404, 422)


def test_progress_and_certificate(site, monkeypatch):
    assert site.get("/api/users/alice/progress").json()["passed"] == 1
    refused = site.get("/users/alice/certificate.pdf", params={"first_name": "A", "last_name": "B"})
    assert refused.status_code == 409 and "still open" in refused.text
    monkeypatch.setattr(cert, "env_runnable", lambda tags: True)
    add_passing("fay", list(PASSING))
    page = site.get("/users/fay")
    assert "excellence" in page.text and "certificate.pdf" in page.text
    pdf = site.get("/users/fay/certificate.pdf", params={"first_name": "Fay", "last_name": "Wong"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert "attachment" in pdf.headers["content-disposition"]
    png = site.get("/users/fay/certificate.png", params={"first_name": "Fay", "last_name": "Wong"})
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert site.get("/api/users/not..valid/progress").status_code in (404, 422)


def test_refresh_runs_once_at_a_time(site, monkeypatch):
    import deeprl.leaderboard as lb

    entered, release = threading.Event(), threading.Event()

    class Report:
        def to_dict(self):
            return {"evaluated": 0}

    def slow_index(hub, **kwargs):
        entered.set()
        release.wait(30)
        return Report()

    monkeypatch.setattr(lb, "index", slow_index)
    first = site.post("/api/refresh")
    assert first.status_code == 202 and first.json()["status"] == "started"
    assert entered.wait(30)
    second = site.post("/api/refresh")
    assert second.status_code == 409 and second.json()["status"] == "already running"
    form = site.post("/refresh", data={"next": "/leaderboard/Taxi-v3"}, follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"] == "/leaderboard/Taxi-v3?refresh=running"
    assert "already running" in site.get(form.headers["location"]).text
    evil = site.post("/refresh", data={"next": "//evil.example/"}, follow_redirects=False)
    assert evil.headers["location"].startswith("/?")  # no open redirect
    release.set()
    site.app.state.refresher.thread.join(30)
    state = site.get("/api/refresh").json()
    assert not state["running"] and state["last_report"] == {"evaluated": 0}


def test_serve_binds_loopback_by_default():
    from deeprl.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)


def test_commands_help_and_busy_port(capsys):
    import socket

    from deeprl.cli import build_parser, main

    for name in ("leaderboard", "index", "progress", "certificate", "serve"):
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([name, "--help"])
        assert done.value.code == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["serve", "--port", str(busy.getsockname()[1]), "--no-index"]) == 2
    assert "Cannot listen on 127.0.0.1" in capsys.readouterr().err
