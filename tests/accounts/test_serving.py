"""Served to others, Menagerie asks for a login and will not start without an account: create_app, `manage.py
serve` on a non-loopback address, and a real gunicorn with two workers (real processes, real HTTP)."""
from __future__ import annotations

import http.cookiejar
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from app import ROOT, create_app
from core.auth import NoAccountError
from core.db import db
from tests.conftest import PASSWORD
from tests.test_servers import first_answer, free_port, stop


@pytest.fixture
def server_env(database_url):
    """server_env(instance, **extra): the environment a person's shell would give a server: no MENAGERIE_AUTH (the
    suite sets it off), this test's instance, and its PostgreSQL database when the suite runs on one."""
    def make(instance, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if k != "MENAGERIE_AUTH"}
        if database_url:
            env["MENAGERIE_DATABASE_URL"] = database_url
        return {**env, "MENAGERIE_INSTANCE": str(instance), **extra}
    return make


@pytest.fixture
def add_user(server_env):
    def add(instance, name, role):
        result = subprocess.run([sys.executable, "manage.py", "user", "add", name, "--role", role,
                                 "--password-stdin"], cwd=ROOT, env=server_env(instance), input=PASSWORD + "\n",
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    return add


def test_create_app_refuses_to_start_without_an_account(instance_path, database_url, monkeypatch):
    """Tried: create_app() as gunicorn calls it (no settings, no MENAGERIE_AUTH) on an instance without accounts:
    NoAccountError naming the command that makes one and the setting that turns logins off. With
    MENAGERIE_AUTH=off, or AUTH_REQUIRED=False in the config, it starts."""
    monkeypatch.delenv("MENAGERIE_AUTH")
    if database_url:
        monkeypatch.setenv("MENAGERIE_DATABASE_URL", database_url)
    with pytest.raises(NoAccountError, match=r"manage.py user add NAME --role admin(.|\n)*MENAGERIE_AUTH=off"):
        create_app(instance_path=instance_path)
    apps = [create_app({"AUTH_REQUIRED": False}, instance_path=instance_path)]
    monkeypatch.setenv("MENAGERIE_AUTH", "off")
    apps.append(create_app(instance_path=instance_path))
    assert [a.config["AUTH_REQUIRED"] for a in apps] == [False, False]
    monkeypatch.setenv("MENAGERIE_AUTH", "perhaps")
    with pytest.raises(ValueError, match="MENAGERIE_AUTH must be 'on' or 'off'"):
        create_app(instance_path=instance_path)
    for a in apps:
        with a.app_context():
            db.engine.dispose()


def test_serve_on_another_address_refuses_without_an_account(tmp_path, server_env):
    """Tried: `manage.py serve --host 0.0.0.0` (a real process) on an instance without accounts: it exits with
    status 1 and says how to make an account, before listening. `serve` on loopback needs none (tests/test_servers)."""
    result = subprocess.run([sys.executable, "manage.py", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                            cwd=ROOT, env=server_env(tmp_path / "instance"), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert "requires a login, but there is no account" in result.stderr
    assert "python manage.py user add NAME --role admin" in result.stderr and "Traceback" not in result.stderr


def test_serve_on_loopback_asks_for_a_login_when_told(tmp_path, server_env, add_user):
    """Tried: `manage.py serve` on loopback with MENAGERIE_AUTH=on and an account: pages redirect to the login
    form (without the setting, loopback stays login-free for one person)."""
    instance = tmp_path / "instance"
    add_user(instance, "ann", "admin")
    port = free_port()
    server = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT,
                              env=server_env(instance, MENAGERIE_AUTH="on"), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        status, page = first_answer(server, f"http://127.0.0.1:{port}/", 60)
        assert status == 200 and 'name="password"' in page  # followed to the login form
    finally:
        stop(server)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_gunicorn_requires_a_login(tmp_path, server_env, add_user, database_url):
    """Tried: `gunicorn -w 2 'app:create_app()'` on an instance without accounts (it does not start, saying why),
    then with an admin made by `manage.py user add`: pages redirect to the login form; a POST without a login is
    refused and changes nothing; logging in through the real form (CSRF token and all) opens the pages on both
    workers; logging out closes them again."""
    instance = tmp_path / "instance"
    subprocess.run([sys.executable, "manage.py", "demo"], cwd=ROOT, env=server_env(instance), check=True,
                   capture_output=True, timeout=300)
    command = [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{free_port()}", "app:create_app()"]
    refused = subprocess.run(command, cwd=ROOT, env=server_env(instance), capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode != 0 and "requires a login, but there is no account" in refused.stderr
    add_user(instance, "ann", "admin")
    port = free_port()
    command[-2] = f"127.0.0.1:{port}"
    server = subprocess.Popen(command, cwd=ROOT, env=server_env(instance), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)

    def send(path, data=None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with browser.open(base + path, data=body, timeout=10) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read().decode()

    try:
        first_answer(server, base + "/login", 60)
        status, headers, _ = send("/gallery/cat")
        assert status == 302 and headers["Location"] == "/login?next=/gallery/cat"
        status, _, login_page = send("/login?next=/gallery/cat")
        token = re.search(r'name="csrf_token" value="([^"]+)"', login_page).group(1)
        status, _, _ = send("/image/1/status", {"status": "rejected", "reason": "x", "csrf_token": token})
        assert status in (302, 401)
        index = create_engine(database_url or f"sqlite:///{instance / 'menagerie.sqlite3'}", poolclass=NullPool)
        with index.connect() as connection:
            assert connection.execute(text("select count(*) from decision")).scalar() == 0
            assert connection.execute(text("select count(*) from image where status != 'active'")).scalar() == 0
        index.dispose()
        status, _, _ = send("/login", {"name": "ann", "password": "wrong", "next": "/", "csrf_token": token})
        assert status == 401
        status, headers, _ = send("/login", {"name": "ann", "password": PASSWORD, "next": "/gallery/cat",
                                             "csrf_token": token})
        assert status == 302 and headers["Location"] == "/gallery/cat"
        for _ in range(6):  # several requests, landing on both workers
            status, _, gallery = send("/gallery/cat")
            assert status == 200 and gallery.count('class="tile active"') == 23 and "ann" in gallery
        token = re.search(r'name="csrf_token" value="([^"]+)"', gallery).group(1)
        assert send("/logout", {"csrf_token": token})[0] == 302
        assert send("/gallery/cat")[0] == 302
    finally:
        stop(server)
