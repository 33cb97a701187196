"""The app factory, the instance folder, migrations, security headers and the command line's contract."""
from __future__ import annotations

import io
import sqlite3
import subprocess
import sys

from app import HTMX_SRI, HTMX_URL, create_app
from project_paths import ROOT
from imagefiles import png_bytes, picture


def test_instance_holds_database_and_schema_is_migrated(app, instance_path):
    db_file = instance_path / "menagerie.sqlite3"
    assert db_file.exists()
    with sqlite3.connect(db_file) as conn:
        version = conn.execute("select version_num from alembic_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    assert version == newest_revision() and {"image", "batch", "decision", "comparison", "snapshot"} <= tables


def newest_revision() -> str:
    from alembic.script import ScriptDirectory
    from core.migrate import alembic_config
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_an_older_schema_is_upgraded_at_start_and_keeps_its_data(instance_path):
    """Tried: an index left at the first migration, with a class in it, opened by the current app."""
    from alembic import command
    from sqlalchemy import create_engine, text
    from core.migrate import alembic_config
    instance_path.mkdir(parents=True)
    engine = create_engine(f"sqlite:///{instance_path / 'menagerie.sqlite3'}")
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
        connection.execute(text("insert into image_class (name, created) values ('owl', '2026-01-01')"))
    engine.dispose()
    create_app({"TESTING": True}, instance_path=instance_path)
    with sqlite3.connect(instance_path / "menagerie.sqlite3") as conn:
        assert conn.execute("select version_num from alembic_version").fetchone()[0] == newest_revision()
        assert conn.execute("select name from image_class").fetchall() == [("owl",)]
        indexes = {r[0] for r in conn.execute("select name from sqlite_master where type='index'")}
    assert "ix_comparison_class_live" in indexes


def test_second_start_on_same_instance_keeps_data_and_secret(app, instance_path, client):
    client.post("/import/upload", data={"files": [(io.BytesIO(png_bytes(picture(16))), "a.png")], "class_name": "cat"},
                content_type="multipart/form-data")
    again = create_app({"TESTING": True}, instance_path=instance_path)
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"]
    assert "cat" in again.test_client().get("/").get_data(as_text=True)


def test_page_loads_pinned_htmx_with_integrity_and_varies_on_hx_request(client):
    response = client.get("/")
    page = response.get_data(as_text=True)
    assert f'src="{HTMX_URL}" integrity="{HTMX_SRI}"' in page
    assert "HX-Request" in response.headers["Vary"]


def test_csrf_is_required_on_posts(instance_path):
    """Tried: a POST without the CSRF token (protection on, as in production)."""
    app = create_app({"TESTING": True}, instance_path=instance_path)
    response = app.test_client().post("/import/folder", data={"path": "/tmp"})
    assert response.status_code == 400 and "Form expired" in response.get_data(as_text=True)


def test_every_command_has_help_and_instance_option():
    from click.testing import CliRunner
    from manage import cli
    runner = CliRunner()
    names = list(cli.commands)
    assert {"serve", "demo", "import"} <= set(names)
    for name in names:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and "--instance" in result.output, (name, result.output)
        command = cli.commands[name]
        for sub in getattr(command, "commands", {}):  # groups such as `rank`
            result = runner.invoke(cli, [name, sub, "--help"])
            assert result.exit_code == 0 and "--instance" in result.output, (name, sub, result.output)


def test_instance_option_chooses_the_folder(tmp_path):
    target = tmp_path / "elsewhere"
    subprocess.run([sys.executable, "manage.py", "demo", "--instance", str(target), "--json"], cwd=ROOT,
                   capture_output=True, check=True)
    assert (target / "menagerie.sqlite3").exists() and (target / "images").is_dir()
