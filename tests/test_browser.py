"""One end-to-end run in a real browser: Debian's Chromium driven by Playwright against a real uvicorn server.

Open the leaderboard, click a model, check that its <video> has a source that loads, download the certificate.
"""

import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
]
FL = "FrozenLake-v1-4x4-no_slippery"


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
    from lb_helpers import PASSING, add_passing, push, train_frozenlake

    push(train_frozenlake(tmp_path), "alice/q-FrozenLake", video=True)
    assert index(timeout_s=120).evaluated == 1  # the real indexer, so the page shows verified figures
    # alice passes the rest on paper (the other units' envs take hours to train): enough for a certificate
    monkeypatch.setattr(cert, "env_runnable", lambda tags: True)
    add_passing("alice", [k for k in PASSING if k != "unit2-frozenlake"][:8])
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_leaderboard_model_video_certificate(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                           "--disable-component-update", "--no-first-run"])
        try:
            page = browser.new_page(accept_downloads=True)
            page.set_default_timeout(30_000)
            page.goto(f"{server}/")
            page.click(f"text={FL}")
            assert page.url.endswith(f"/leaderboard/{FL}")
            row = page.locator("#board tbody tr").first
            assert row.locator("td").nth(3).inner_text() == "1.00"
            row.locator("a.model-link").click()
            page.wait_for_url("**/models/alice/q-FrozenLake")
            src = page.locator("#replay source").get_attribute("src")
            assert src and "/files/replay.mp4" in src
            # the browser's own fetch of the source, with the page's origin and cookies
            status, ctype = page.evaluate(
                "async (u) => { const r = await fetch(u); return [r.status, r.headers.get('content-type')]; }", src)
            assert (status, ctype) == (200, "video/mp4")
            # the <video> element itself loads it (metadata at least: readyState >= 1, no media error)
            page.wait_for_function("() => { const v = document.querySelector('#replay');"
                                   " return v.readyState >= 1 || v.error !== null; }")
            assert page.evaluate("() => document.querySelector('#replay').error") is None
            page.click("p.meta a[href='/users/alice']")
            page.wait_for_url("**/users/alice")
            assert "completion" in page.inner_text("main")
            page.fill("input[name=first_name]", "Alice")
            page.fill("input[name=last_name]", "Liddell")
            with page.expect_download() as info:
                page.click("#download-pdf")
            download = info.value
            path = tmp_path / download.suggested_filename
            download.save_as(path)
            assert download.suggested_filename == "deep-rl-course-certificate-alice.pdf"
            assert path.read_bytes().startswith(b"%PDF")
        finally:
            browser.close()
