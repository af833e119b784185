"""The web app through httpx (FastAPI's TestClient): pages, JSON API, file serving, card safety, certificates."""

import os
import time

import pytest
from fastapi.testclient import TestClient

from deeprl import certification as cert
from deeprl.hub import get_hub
from lb_helpers import PASSING, add_model, add_passing, push, push_folder, staged_copy, train_frozenlake

FL = "FrozenLake-v1-4x4-no_slippery"
EVIL = """---
tags: [reinforcement-learning, FrozenLake-v1-4x4-no_slippery]
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
    """Two real models pushed and indexed by the real indexer (stored card, file list), plus synthetic rows."""
    from deeprl.leaderboard import index

    run = train_frozenlake(tmp_path)
    push(run, "alice/q-FrozenLake", video=True)
    folder = staged_copy("alice/q-FrozenLake")
    (folder / "README.md").write_text(EVIL)
    push_folder(folder, "mallory/evil-card")
    assert index(timeout_s=120).evaluated == 2
    for i in range(5):
        add_model(f"user{i}/taxi", "Taxi-v3", float(i), pushed=i, algo="ppo" if i == 4 else "qlearning")
    add_model("zed/broken", "Taxi-v3", 0.0, status="error", error="model.safetensors is corrupt")
    add_model("liar/taxi", "Taxi-v3", 2.5, pushed=9, claimed=(9.0, 0.0), flagged=True)
    from deeprl.web import create_app

    with TestClient(create_app(watch_interval_s=None)) as client:
        yield client


def test_pages(site):
    home = site.get("/")
    assert home.status_code == 200 and "Taxi-v3" in home.text and FL in home.text
    assert "SpaceInvadersNoFrameskip-v4" in home.text  # every course env, with or without models
    board = site.get("/leaderboard/Taxi-v3", params={"per_page": 2, "page": 2})
    assert board.status_code == 200 and "page 2 / 3" in board.text
    assert "user2/taxi" in board.text and "user1/taxi" not in board.text and "user4/taxi" not in board.text
    assert "zed/broken" in board.text and "corrupt" in board.text  # listed with its reason, not ranked
    found = site.get("/leaderboard/Taxi-v3", params={"user": "USER3"})
    assert "user3/taxi" in found.text and "user2/taxi" not in found.text
    asc = site.get("/leaderboard/Taxi-v3", params={"sort": "result", "order": "asc"}).text
    assert asc.index("user0/taxi") < asc.index("user4/taxi")
    assert site.get("/leaderboard/Nope-v0").status_code == 404
    assert site.get("/leaderboard/Taxi-v3", params={"sort": "evil"}).status_code == 422
    assert site.get("/users/user3").status_code == 200


def test_board_explains_itself(site):
    from deeprl.envs.registry import get_spec

    text = site.get("/leaderboard/Taxi-v3").text
    assert get_spec("Taxi-v3").description in text
    assert "result ≥ 4.5" in text and "deeprl push" in text  # the course minimum and how to submit
    for a in cert.ASSIGNMENTS:
        for alts in a.envs:
            assert f'href="/leaderboard/{alts[0]}"' in text or f"<strong>{alts[0]}</strong>" in text
    assert '<td class="algo">ppo</td>' in text and '<td class="algo">qlearning</td>' in text
    # the flag's reason is on the page, not only in a tooltip
    liar = text.split("liar/taxi</a>")[1].split("</tr>")[0]
    assert "⚑ claims 9.00" in liar and 'class="flag-reason"' in liar
    empty = site.get("/leaderboard/CartPole-v1")
    assert empty.status_code == 200 and "No models on this board yet" in empty.text and "result ≥ 350" in empty.text


def test_api(site):
    board = site.get("/api/leaderboard/Taxi-v3", params={"per_page": 2}).json()
    assert (board["env"], board["total"], board["pages"]) == ("Taxi-v3", 6, 3)
    assert [r["repo_id"] for r in board["rows"]] == ["user4/taxi", "user3/taxi"]
    assert board["rows"][0]["algo"] == "ppo" and board["minimum"] == 4.5 and board["description"]
    assert {
        "rank",
        "repo_id",
        "user",
        "result",
        "mean_reward",
        "std_reward",
        "claimed_result",
        "flagged",
        "pushed_at",
    } <= set(board["rows"][0])
    envs = {e["env"]: e for e in site.get("/api/envs").json()}
    assert envs["Taxi-v3"]["models"] == 6 and envs["Taxi-v3"]["unranked"] == 1 and envs[FL]["users"] == 2
    model = site.get("/api/models/alice/q-FrozenLake").json()
    assert (
        model["rank"] == 1 and model["video_url"] and {"README.md", "replay.mp4"} <= {f["path"] for f in model["files"]}
    )
    assert site.get("/api/models/alice/nope").status_code == 404
    assert site.get("/api/leaderboard/Taxi-v3", params={"per_page": 0}).status_code == 422
    schema = site.get("/openapi.json").json()
    assert {
        "/api/envs",
        "/api/leaderboard/{env}",
        "/api/models/{ns}/{name}",
        "/api/users/{user}/progress",
        "/api/refresh",
        "/api/certificates/{cert_id}",
    } <= set(schema["paths"])
    assert not any(p.startswith(("/models", "/users", "/leaderboard", "/admin")) for p in schema["paths"])


def test_model_page_card_is_text_and_video_plays(site):
    page = site.get("/models/mallory/evil-card")
    assert page.status_code == 200
    html = page.text
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert "<img src=x" not in html and "onerror=alert(1)&gt;" in html  # shown as text, not an attribute
    assert 'href="javascript:' not in html and "<table>" in html
    assert '<span class="tag">FrozenLake-v1-4x4-no_slippery</span>' in html  # front matter, stored at indexing
    page = site.get("/models/alice/q-FrozenLake").text
    assert '<video id="replay"' in page
    src = page.split('<source src="')[1].split('"')[0]
    video = site.get(src)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4" and video.content[4:8] == b"ftyp"
    part = site.get(src, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100


def test_model_pages_answer_from_stored_data(site, monkeypatch):
    """No Markdown/YAML parsing and no git process per page request: the indexer stored the card and files."""
    import subprocess

    import deeprl.web.app as web_app
    from deeprl.hub.local import LocalHub

    assert not hasattr(web_app, "render_card")

    def no_process(*args, **kwargs):
        raise AssertionError(f"a page request started a process: {args[0]!r}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    monkeypatch.setattr(LocalHub, "download", lambda *a, **k: no_process(["hub download"]))
    page = site.get("/models/mallory/evil-card")
    assert page.status_code == 200 and "<table>" in page.text and "README.md" in page.text
    api = site.get("/api/models/alice/q-FrozenLake").json()
    assert {"README.md", "replay.mp4", "config.json"} <= {f["path"] for f in api["files"]}


def test_file_folder_is_resolved_once(site, monkeypatch):
    from deeprl.hub.local import LocalHub

    calls = []
    real = LocalHub.download

    def counting(self, *args, **kwargs):
        calls.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LocalHub, "download", counting)
    src = site.get("/api/models/alice/q-FrozenLake").json()["video_url"]
    for _ in range(5):
        assert site.get(src, headers={"Range": "bytes=0-9"}).status_code == 206
    assert len(calls) == 1


def test_file_paths_are_validated(site):
    from deeprl.paths import home

    base = "/models/alice/q-FrozenLake/files/"
    assert site.get(base + "config.json").status_code == 200
    os.symlink("/etc/passwd", home() / "hub" / "alice" / "q-FrozenLake" / "passwd")
    for bad in (
        "%2e%2e/%2e%2e/mallory/evil-card/README.md",
        "..%2f..%2fmallory%2fevil-card%2fREADME.md",
        ".git/config",
        "%2fetc%2fpasswd",
        "passwd",
        "nothing.bin",
        "logs/..%2f..%2f..%2fdeeprl.db",
    ):
        assert site.get(base + bad).status_code == 404, bad
    assert site.get(base + "config.json", params={"revision": "0" * 40}).status_code == 404  # not indexed
    assert site.get(base + "config.json", params={"revision": "HEAD~1"}).status_code == 422
    assert site.get("/models/..%2f..%2fetc/passwd").status_code in (404, 422)
    assert site.get("/models/a..b/c").status_code in (404, 422)


def test_numbers_are_bounded_and_errors_are_pages(site):
    for path in ("/leaderboard/Taxi-v3", "/api/leaderboard/Taxi-v3"):
        r = site.get(path, params={"page": str(2**62)})  # was a 500: SQLite integer overflow
        assert r.status_code == 422, path
    page = site.get("/leaderboard/Taxi-v3", params={"page": str(2**62)})
    assert page.headers["content-type"].startswith("text/html") and "Bad value for page" in page.text
    assert site.get("/leaderboard/Taxi-v3", params={"per_page": "abc"}).headers["content-type"].startswith("text/html")
    assert site.get("/no/such/page").headers["content-type"].startswith("text/html")
    huge = "x" * 60_000  # httpx's limit on a URL; the 100 KB came back whole the same way
    for path in ("/leaderboard/Taxi-v3", "/api/leaderboard/Taxi-v3"):
        r = site.get(path, params={"user": huge})
        assert r.status_code == 422 and "x" * 200 not in r.text and len(r.content) < 20_000, path
    r = site.get("/api/leaderboard/Taxi-v3", params={"order": "sideways" * 1000})
    assert r.status_code == 422 and "sideways" not in r.text
    assert set(r.json()["detail"][0]) == {"loc", "msg", "type"}
    long_user = site.get("/users/" + "u" * 99)
    assert long_user.status_code == 404 and "u" * 80 not in long_user.text


def test_security_headers_everywhere(site):
    src = site.get("/api/models/alice/q-FrozenLake").json()["video_url"]
    for path in (
        "/",
        "/leaderboard/Taxi-v3",
        "/api/envs",
        "/api/leaderboard/Taxi-v3",
        "/openapi.json",
        "/static/style.css",
        "/no/such/page",
        "/api/nothing",
        "/docs",
        src,
    ):
        r = site.get(path)
        for name in (
            "content-security-policy",
            "x-content-type-options",
            "referrer-policy",
            "x-frame-options",
            "cross-origin-opener-policy",
        ):
            assert name in r.headers, (path, name)
        assert "x-deeprl-cache" not in r.headers
    csp = site.get("/").headers["content-security-policy"]
    assert "img-src 'self' data:;" in csp and "https:" not in csp  # no tracking pixels from a card
    assert site.get("/leaderboard/Taxi-v3").headers["content-security-policy"] == csp  # cached copy too


def test_pages_follow_the_database(site):
    assert "newbie/taxi" not in site.get("/leaderboard/Taxi-v3").text
    assert "newbie/taxi" not in site.get("/api/leaderboard/Taxi-v3").text
    add_model("newbie/taxi", "Taxi-v3", 8.0, pushed=30)
    assert "newbie/taxi" in site.get("/leaderboard/Taxi-v3").text
    assert site.get("/api/leaderboard/Taxi-v3").json()["rows"][0]["repo_id"] == "newbie/taxi"


def test_docs_need_no_internet(site):
    docs = site.get("/docs")
    assert docs.status_code == 200 and "/api/leaderboard/{env}" in docs.text and "/openapi.json" in docs.text
    assert "cdn" not in docs.text.lower() and "https://" not in docs.text
    assert site.get("/redoc", follow_redirects=False).headers["location"] == "/docs"


def csrf_of(client, path):
    """The token a page hands this client (its cookie; the page's forms carry the same value)."""
    page = client.get(path)
    token = client.cookies.get("deeprl_csrf")
    assert token and ('name="csrf"' not in page.text or f'name="csrf" value="{token}"' in page.text)
    return token


def test_progress_and_certificate(site, monkeypatch):
    assert site.get("/api/users/alice/progress").json()["passed"] == 1
    alice = site.get("/users/alice").text
    assert 'href="/leaderboard/Taxi-v3"' in alice and f"rank 1 on {FL}" in alice
    token = csrf_of(site, "/users/alice")
    refused = site.post("/users/alice/certificate", data={"first_name": "A", "last_name": "B", "csrf": token})
    assert refused.status_code == 409 and "still open" in refused.text
    monkeypatch.setattr(cert, "env_runnable", lambda tags: True)
    add_passing("fay", list(PASSING))
    page = site.get("/users/fay").text
    assert "excellence" in page and 'method="post"' in page and "deeprl certificate" not in page
    token = csrf_of(site, "/users/fay")
    form = {"first_name": "Fay", "last_name": "Wong", "csrf": token, "format": "pdf"}
    assert site.post("/users/fay/certificate", data={**form, "csrf": "forged" * 5}).status_code == 403
    assert site.post("/users/fay/certificate", data=form, headers={"Origin": "http://evil.example"}).status_code == 403
    pdf = site.post("/users/fay/certificate", data=form)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert "attachment" in pdf.headers["content-disposition"]
    png = site.post("/users/fay/certificate", data={**form, "format": "png"})
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert site.get("/api/users/not..valid/progress").status_code in (404, 422)

    cid = pdf.headers["x-certificate-id"]
    shown = site.get(f"/certificates/{cid}")
    assert shown.status_code == 200 and "Fay Wong" in shown.text and "excellence" in shown.text
    data = site.get(f"/api/certificates/{cid}").json()
    assert (data["first_name"], data["last_name"], data["user"], data["level"]) == ("Fay", "Wong", "fay", "excellence")
    assert any(r["repo_id"] and r["repo_id"] in shown.text for r in data["results"])
    assert site.get("/certificates/nosuchcertificate0").status_code == 404
    assert site.get("/api/certificates/nosuchcertificate0").status_code == 404


class FakeIndex:
    """lb.index stand-in: counts runs, each finishing at once."""

    def __init__(self):
        self.runs = 0

    def __call__(self, hub, **kwargs):
        self.runs += 1

        class Report:
            def to_dict(self):
                return {"evaluated": 0}

        return Report()


def wait_idle(app):
    thread = app.state.refresher.thread
    if thread is not None:
        thread.join(30)


def test_refresh_needs_token_and_cools_down(tmp_path, monkeypatch):
    import deeprl.leaderboard as lb
    from deeprl.web import create_app

    fake = FakeIndex()
    monkeypatch.setattr(lb, "index", fake)
    token = "a-long-admin-token-0123456789"
    with TestClient(create_app(admin_token=token, watch_interval_s=None)) as client:
        assert client.post("/api/refresh").status_code == 401
        assert client.post("/api/refresh", headers={"Authorization": "Bearer wrong"}).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert client.post("/api/refresh", headers={**auth, "Origin": "http://evil.example"}).status_code == 403
        first = client.post("/api/refresh", headers=auth)
        assert first.status_code == 202 and first.json()["status"] == "started"
        wait_idle(client.app)
        codes = {client.post("/api/refresh", headers=auth).status_code for _ in range(300)}
        assert codes == {429} and fake.runs == 1  # 300 POSTs were 6 runs before the cooldown
        again = client.post("/api/refresh", headers=auth)
        assert int(again.headers["retry-after"]) >= 1
        state = client.get("/api/refresh").json()
        assert not state["running"] and state["last_report"] == {"evaluated": 0}

    with TestClient(create_app(watch_interval_s=None)) as client:  # no token set: the API cannot refresh
        refused = client.post("/api/refresh", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 403 and fake.runs == 1


def test_refresh_form_needs_csrf_and_same_origin(tmp_path, monkeypatch):
    import deeprl.leaderboard as lb
    from deeprl.web import create_app

    fake = FakeIndex()
    monkeypatch.setattr(lb, "index", fake)
    with TestClient(create_app(watch_interval_s=None)) as client:
        assert "refresh-button" not in client.get("/").text  # the button is on the admin page only
        token = csrf_of(client, "/admin")
        # a form on another site: no cookie token, or the browser says where it comes from
        other = TestClient(client.app)
        assert (
            other.post("/admin/refresh", data={"csrf": token}, follow_redirects=False).headers["location"]
            == "/admin?done=refused"
        )
        cross = client.post(
            "/admin/refresh",
            data={"csrf": token},
            follow_redirects=False,
            headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert cross.headers["location"] == "/admin?done=refused" and fake.runs == 0
        ok = client.post(
            "/admin/refresh",
            data={"csrf": token},
            follow_redirects=False,
            headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
        )
        assert ok.headers["location"] == "/admin?done=started"
        wait_idle(client.app)
        assert fake.runs == 1
        soon = client.post("/admin/refresh", data={"csrf": token}, follow_redirects=False)
        assert soon.headers["location"] == "/admin?done=cooling" and fake.runs == 1
        assert "moments ago" in client.get(soon.headers["location"]).text

    # listening beyond loopback without a token: refresh by hand is off, even from the page itself
    with TestClient(create_app(public=True, watch_interval_s=None)) as client:
        assert "is off" in client.get("/admin").text
        token = csrf_of(client, "/admin")
        r = client.post("/admin/refresh", data={"csrf": token}, follow_redirects=False)
        assert r.headers["location"] == "/admin?done=refused" and fake.runs == 1


def test_serve_arguments(monkeypatch):
    from deeprl.cli import build_parser
    from deeprl.commands.serve import build_app

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)
    monkeypatch.delenv("DEEPRL_ADMIN_TOKEN", raising=False)
    local = build_app(build_parser().parse_args(["serve", "--no-index", "--watch-interval", "0"]))
    assert not local.state.public and local.state.admin_token is None
    with TestClient(local) as client:  # a loopback server answers loopback names only (DNS rebinding)
        assert client.get("/", headers={"Host": "evil.example"}).status_code == 400
        assert client.get("/", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    monkeypatch.setenv("DEEPRL_ADMIN_TOKEN", "x" * 20)
    public = build_app(build_parser().parse_args(["serve", "--host", "0.0.0.0", "--no-index"]))
    assert public.state.public and public.state.admin_token == "x" * 20


def test_a_push_is_indexed_without_a_click(tmp_path):
    from deeprl.web import create_app

    run = train_frozenlake(tmp_path)
    with TestClient(create_app(watch_interval_s=0.05)) as client:
        assert client.get("/api/models/carol/q-FrozenLake").status_code == 404
        push(run, "carol/q-FrozenLake")
        rev = get_hub("local").revisions("carol/q-FrozenLake")[0][0]
        deadline = time.monotonic() + 120
        while True:
            got = client.get("/api/models/carol/q-FrozenLake")
            if got.status_code == 200 and any(
                r["revision"] == rev and r["status"] == "ok" for r in got.json()["revisions"]
            ):
                break
            assert time.monotonic() < deadline, "the push was not indexed"
            time.sleep(0.05)
        assert got.json()["rank"] == 1


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
