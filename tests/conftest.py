"""Fixtures: one temporary instance folder per test, the real app on a real SQLite file, and the one way tests
build image datasets (`dataset`); and the helpers web tests share (HX, answer_form, at_once, follow_job)."""
from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before any test imports torch
# The suite runs login-free unless a test asks for logins (AUTH_REQUIRED=True in app_config, or MENAGERIE_AUTH=on in
# a server's environment): apps made here, by create_app in a test, or by a server a test starts need no account.
os.environ.setdefault("MENAGERIE_AUTH", "off")

import pytest  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app import create_app  # noqa: E402
from tests.imagefiles import DEMO_IMAGES, build_dataset  # noqa: E402


@pytest.fixture
def instance_path(tmp_path: Path) -> Path:
    return tmp_path / "instance"


@pytest.fixture
def app_config() -> dict:
    """Override in a test module to change settings; CSRF is checked by its own tests."""
    return {}


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch) -> str | None:
    """The index this test uses: None for the instance's own SQLite file; with MENAGERIE_TEST_POSTGRES set (a
    server URL, as .ci/run sets it), a fresh PostgreSQL database for this test, dropped afterwards. It is also put
    in MENAGERIE_DATABASE_URL, so every app, server and command the test starts uses the same database."""
    from tests.databases import fresh_database
    with fresh_database(tmp_path) as url:
        if url:
            monkeypatch.setenv("MENAGERIE_DATABASE_URL", url)
        yield url


@pytest.fixture
def app(instance_path: Path, app_config: dict, database_url: str | None):
    config = {"TESTING": True, "WTF_CSRF_ENABLED": False, "AUTH_REQUIRED": False, **app_config}
    if database_url:
        config.setdefault("SQLALCHEMY_DATABASE_URI", database_url)
    app = create_app(config, instance_path=instance_path)
    yield app
    from core.db import db
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


PASSWORD = "correct horse battery"  # every test account's password
HX = {"HX-Request": "true"}  # the header htmx sends with a region request
HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"')


def answer_form(html: str, *names: str) -> dict:
    """The hidden fields `names` of the answer form on a ranking page or region, as the page would post them:
    answer_form(html, "left", "right") is the pair on screen, "next_left"/"next_right" the one preloaded after it,
    "shown"/"next" a best-of-4 screen and the next. Only the answer form counts (what comes before the undo form);
    a field the form does not hold is left out."""
    fields = dict(HIDDEN.findall(html.split('class="rank-undo"')[0]))
    return {name: fields[name] for name in names if name in fields}


def at_once(work, calls) -> None:
    """Run work(*args) for each args in `calls`, each in its own thread, all started together; return once all
    have ended, raising the first error any of them raised (a failed assert in a thread fails the test)."""
    errors = []

    def run(args):
        try:
            work(*args)
        except BaseException as exc:  # noqa: BLE001 - raised below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(args,)) for args in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def follow_job(client, response, timeout: float = 120):
    """Follow a job page as htmx would: `response` must send the browser to /jobs/...; poll that page until it
    sends the browser on (HX-Redirect), then open where it leads. Fails if the job page says it failed."""
    assert response.status_code == 302 and "/jobs/" in response.location, response.status_code
    deadline = time.time() + timeout
    while time.time() < deadline:
        polled = client.get(response.location, headers=HX)
        if "HX-Redirect" in polled.headers:
            return client.get(polled.headers["HX-Redirect"])
        assert "It failed" not in polled.get_data(as_text=True), polled.get_data(as_text=True)
        time.sleep(0.2)
    raise AssertionError(f"the job at {response.location} did not finish within {timeout:g} s")


@pytest.fixture
def account(app):
    """account(name, role="viewer", password=PASSWORD) -> name: a real account in this test's index, made through
    the accounts service (argon2 hash and all)."""
    from accounts import service
    from core.db import db

    def make(name: str, role: str = "viewer", password: str = PASSWORD) -> str:
        with app.app_context():
            return service.create(db.session, name, password, role).name

    return make


@pytest.fixture
def logins_required(app):
    """This test's app requires logins, as gunicorn serves it. It starts login-free (an app that requires logins
    refuses to start without an account) and is then switched, as `manage.py serve` switches it."""
    app.config["AUTH_REQUIRED"] = True
    return app


@pytest.fixture
def login(app, account):
    """login(client, role, name=None) -> name: make an account with `role` (named after it unless given) and log
    `client` in through the login form, as a browser would."""
    def log_in(client, role: str, name: str | None = None) -> str:
        name = account(name or role, role)
        response = client.post("/login", data={"name": name, "password": PASSWORD, "next": "/"})
        assert response.status_code == 302, response.get_data(as_text=True)
        return name

    return log_in


@pytest.fixture
def demo_images() -> Path:
    return DEMO_IMAGES


@pytest.fixture
def dataset(request, tmp_path: Path):
    """Build an image dataset for this test, and import it if asked:

        dataset(classes, *, kind="pictures", size=None, seed=0, name="{i}.png", root=None, imported=None) -> root

    `classes`, `kind`, `size`, `seed` and `name` say which files are written (tests.imagefiles.build_dataset), e.g.
    dataset({"cat": 6, "dog": 3}, size=16) writes 9 distinct pictures, and dataset({"cat": 6, "fish": 6},
    kind="demo") copies the first 6 demo cats and fish. `root` is the folder to write in (default: a new
    folder under tmp_path, "dataset", then "dataset-2" and so on). `imported` is None to write the files only,
    "cli" to import the folder with `manage.py import ROOT` through this test's CLI runner (which must succeed), or
    "service" to import it with curator.imports.service.import_paths in this test's app. The app is made only
    when an import needs it, so without one, tmp_path holds nothing but the dataset."""
    made: list[Path] = []

    def build(classes, *, kind: str = "pictures", size: int | None = None, seed: int = 0, name: str = "{i}.png",
              root: Path | None = None, imported: str | None = None) -> Path:
        if imported not in (None, "cli", "service"):
            raise ValueError(f"imported must be None, 'cli' or 'service', not {imported!r}")
        if root is None:
            root = tmp_path / ("dataset" if not made else f"dataset-{len(made) + 1}")
        build_dataset(root, classes, kind=kind, size=size, seed=seed, name=name)
        made.append(root)
        if imported == "cli":
            from manage import cli
            result = request.getfixturevalue("runner").invoke(cli, ["import", str(root)])
            assert result.exit_code == 0, result.output
        elif imported == "service":
            from core.db import db
            from curator.imports.service import import_paths
            from curator.imports.storage import ImageStore
            app = request.getfixturevalue("app")
            with app.app_context():
                import_paths(db.session, ImageStore(app.instance_path), [root])
        return root

    return build


@pytest.fixture
def end_training_processes(app):
    """After the test (even a failed one): end the training and sampling processes it started, by their ids."""
    from core.db import db
    from core.models import Run
    from core.processes import process_alive
    from diffusion import rundir
    yield
    with app.app_context():
        launched = {r.id: r.pid for r in db.session.scalars(select(Run))}
    for run_dir in (p for p in (Path(app.instance_path) / "runs").glob("*") if p.is_dir()):
        jobs = [(rundir.read_status(run_dir).get("pid"), run_dir.name), (launched.get(run_dir.name), run_dir.name)]
        jobs += [((rundir.read_json(j, default={}) or {}).get("pid"), None)
                 for j in run_dir.glob("generated/*/job.json")]
        for pid, expect in jobs:
            if pid and process_alive(pid, expect=expect):
                try:
                    os.killpg(pid, signal.SIGKILL)  # each was started as the leader of its own process group
                except (ProcessLookupError, PermissionError):
                    pass
