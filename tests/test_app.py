"""The app as a whole: the factory and the instance folder, pinned htmx, CSRF and the command line's contract
(the migrations themselves: tests/core/test_migrations.py)."""
from __future__ import annotations

import io
import subprocess
import sys

from app import HTMX_SRI, HTMX_URL, ROOT, create_app
from tests.imagefiles import picture, png_bytes


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


def test_htmx_regions_get_partials_and_boosted_navigation_gets_whole_pages(client):
    """Tried: the runs table as an htmx region, then the same URL as a boosted navigation (hx-boost sends
    HX-Request too, but replaces the whole body)."""
    region = client.get("/train/?part=table", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<nav" not in region
    boosted = client.get("/train/?part=table", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert '<nav class="top">' in boosted.get_data(as_text=True)
