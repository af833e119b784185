"""End-to-end runs in a real browser: Debian's Chromium driven by Playwright against a real uvicorn server.

Open the leaderboard, click a model, check that its <video> has a source that loads, get the certificate from
the progress page's form and check its verification page against the PDF; every page at phone width without
sideways scrolling; the API page with the network off.
"""

import re
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
]
FL = "FrozenLake-v1-4x4-no_slippery"
LONG = "a-user-with-a-rather-long-name/" + "an-uncommonly-long-model-name-that-does-not-wrap-" * 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, monkeypatch):
    import uvicorn

    from deeprl import certification as cert
    from deeprl.leaderboard import index
    from deeprl.web import create_app
    from lb_helpers import PASSING, add_model, add_passing, push, train_frozenlake

    push(train_frozenlake(tmp_path), "alice/q-FrozenLake", video=True)
    assert index(timeout_s=120).evaluated == 1  # the real indexer, so the page shows verified figures
    # alice passes the rest on paper (the other units' envs take hours to train): enough for a certificate
    monkeypatch.setattr(cert, "env_runnable", lambda tags: True)
    add_passing("alice", [k for k in PASSING if k != "unit2-frozenlake"][:8])
    add_model(LONG[:96].rstrip("-"), "Taxi-v3", 3.0, claimed=(9.5, 0.0), flagged=True)
    add_model("zed/broken-" + "x" * 80, "Taxi-v3", 0.0, status="error", error="model.safetensors is corrupt " * 4)
    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(create_app(watch_interval_s=None), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        try:
            yield b
        finally:
            b.close()


def get_certificate(page, tmp_path, first="Alice", last="Liddell") -> bytes:
    page.fill("input[name=first_name]", first)
    page.fill("input[name=last_name]", last)
    with page.expect_download() as info:
        page.click("#download-pdf")
    download = info.value
    assert download.suggested_filename == "deep-rl-course-certificate-alice.pdf"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    return path.read_bytes()


def test_leaderboard_model_video_certificate(server, browser, tmp_path):
    page = browser.new_page(accept_downloads=True)
    page.set_default_timeout(30_000)
    page.goto(f"{server}/")
    page.click(f"text={FL}")
    assert page.url.endswith(f"/leaderboard/{FL}")
    row = page.locator("#board tbody tr").first
    assert row.locator("td").nth(3).inner_text() == "1.00"
    assert row.locator("td.algo").inner_text() == "qlearning"
    row.locator("a.model-link").click()
    page.wait_for_url("**/models/alice/q-FrozenLake")
    src = page.locator("#replay source").get_attribute("src")
    assert src and "/files/replay.mp4" in src
    # the browser's own fetch of the source, with the page's origin and cookies
    status, ctype = page.evaluate(
        "async (u) => { const r = await fetch(u); return [r.status, r.headers.get('content-type')]; }", src
    )
    assert (status, ctype) == (200, "video/mp4")
    # the <video> element itself loads it (metadata at least: readyState >= 1, no media error)
    page.wait_for_function(
        "() => { const v = document.querySelector('#replay'); return v.readyState >= 1 || v.error !== null; }"
    )
    assert page.evaluate("() => document.querySelector('#replay').error") is None
    page.click("p.meta a[href='/users/alice']")
    page.wait_for_url("**/users/alice")
    assert "completion" in page.inner_text("main")
    assert page.locator(f"a.rank[href^='/leaderboard/{FL}']").inner_text() == f"rank 1 on {FL}"
    pdf = get_certificate(page, tmp_path)
    assert pdf.startswith(b"%PDF")

    # what the PDF says (its verification id, its title) is what the verification page confirms
    cid = re.search(rb"/certificates/([a-z0-9]+)", pdf).group(1).decode()
    assert b"Certificate of Completion" in pdf
    page.goto(f"{server}/certificates/{cid}")
    assert page.inner_text("#cert-name") == "Alice Liddell"
    assert page.inner_text("#cert-level") == "completion"
    assert page.inner_text("#cert-id") == cid
    assert page.inner_text("#cert-date") == datetime.now(UTC).strftime("%d %B %Y")
    assert "alice/q-FrozenLake" in page.inner_text("table.cert-results")
    page.goto(f"{server}/certificates/nosuchcertificate0")
    assert "No certificate has this verification id" in page.inner_text("main")


def test_every_page_fits_a_phone(server, browser, tmp_path):
    page = browser.new_page(
        viewport={"width": 390, "height": 844},
        device_scale_factor=1,
        is_mobile=True,
        has_touch=True,
        accept_downloads=True,
    )
    page.set_default_timeout(30_000)
    page.goto(f"{server}/users/alice")
    pdf = get_certificate(page, tmp_path)
    cid = re.search(rb"/certificates/([a-z0-9]+)", pdf).group(1).decode()
    paths = [
        "/",
        f"/leaderboard/{FL}",
        "/leaderboard/Taxi-v3",
        "/leaderboard/CartPole-v1",
        "/models/alice/q-FrozenLake",
        f"/models/{LONG[:96].rstrip('-')}",
        "/users/alice",
        "/users/nobody",
        "/admin",
        "/docs",
        f"/certificates/{cid}",
        "/no/such/page",
        "/leaderboard/Taxi-v3?page=" + "9" * 30,
    ]
    for i, path in enumerate(paths):
        page.goto(server + path)
        page.screenshot(path=str(tmp_path / f"phone-{i}.png"), full_page=True)
        scroll, inner = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, f"{path} scrolls sideways at 390 px ({scroll} > {inner})"
        box = page.locator("#api-link").bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= inner, path
        color, background = page.evaluate(
            "() => [getComputedStyle(document.querySelector('#api-link')).color,"
            " getComputedStyle(document.querySelector('header')).backgroundColor]"
        )
        assert color != background, path


def test_docs_render_with_the_network_off(server, browser):
    page = browser.new_page()
    page.set_default_timeout(30_000)
    outside = []

    def only_this_server(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto(f"{server}/docs")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("h1") == "JSON API"
    assert page.locator("section.op").count() >= 7
    assert "/api/leaderboard/{env}" in page.inner_text("main")
    assert outside == []
    page.click("#schema-link")
    assert "openapi" in page.content()
