"""Browser tests: the real app served over HTTP on loopback, driven in Debian's headless Chromium by Playwright.

The machines have no internet: the htmx CDN address is answered from the npm package of the same release
(node_modules/htmx.org), after checking that the page's integrity hash matches that file; every other outside
request is refused, so a page that needs the network fails here.
"""
from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app import HTMX_SRI, HTMX_URL, ROOT

CHROMIUM = "/usr/bin/chromium"
HTMX_LOCAL = ROOT / "node_modules" / "htmx.org" / "dist" / "htmx.min.js"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


@pytest.fixture
def live_server(app):
    """The app on a real HTTP server in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright
    assert Path(CHROMIUM).exists(), "browser tests need Debian's chromium (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh page whose only outside request, the htmx CDN script, is served from the local copy."""
    htmx = HTMX_LOCAL.read_bytes()
    assert sri(htmx) == HTMX_SRI, "the pinned integrity hash must match htmx from the npm package"
    context = browser.new_context(base_url=live_server)
    served = []

    def route(r):
        url = r.request.url
        if url == HTMX_URL:
            served.append(url)
            r.fulfill(status=200, body=htmx, headers={"Content-Type": "application/javascript",
                                                     "Access-Control-Allow-Origin": "*"})
        elif url.startswith(live_server):
            r.continue_()
        else:
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.served_htmx = served
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
