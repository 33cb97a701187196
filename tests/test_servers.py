"""Real servers on a loopback port: `manage.py serve` for one person, gunicorn (several workers, one SQLite file)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

from app import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


def first_answer(server: subprocess.Popen, url: str, seconds: float) -> tuple[int, str]:
    """Poll until the server answers (bounded), failing with its output if it exits first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return fetch(url)
        except OSError:
            assert server.poll() is None, server.stdout.read().decode()
            assert time.monotonic() < deadline, f"no answer from {url} within {seconds} s"
            time.sleep(0.2)


def server_env(instance, database_url: str | None) -> dict:
    """The environment a server process gets: this test's instance, and its PostgreSQL database when the suite runs
    on one (tests/databases.py)."""
    env = {**os.environ, "MENAGERIE_INSTANCE": str(instance)}
    if database_url:
        env["MENAGERIE_DATABASE_URL"] = database_url
    return env


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(timeout=10)


def test_gunicorn_serves_pages(tmp_path, database_url):
    env = server_env(tmp_path / "instance", database_url)
    subprocess.run([sys.executable, "manage.py", "demo"], cwd=ROOT, env=env, check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
                               "app:create_app()"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        status, page = first_answer(server, f"http://127.0.0.1:{port}/", 30)
        assert status == 200 and "bird" in page and "turtle" in page
        for _ in range(6):  # several requests, landing on both workers
            status, gallery = fetch(f"http://127.0.0.1:{port}/gallery/cat")
            assert status == 200 and gallery.count('class="tile active"') == 23
    finally:
        stop(server)


def test_serve_command_answers_with_the_demo_loaded(tmp_path, database_url):
    """The README's first command: `python manage.py serve --demo` imports the demo set and serves it."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "manage.py", "--instance", str(tmp_path / "instance"), "serve",
                               "--demo", "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=server_env(tmp_path / "instance", database_url))
    try:
        status, page = first_answer(server, f"http://127.0.0.1:{port}/", 60)
        assert status == 200 and "turtle" in page and "rabbit" in page
    finally:
        stop(server)
