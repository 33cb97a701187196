"""The users page (/users, admins only): add an account, change a role, disable and enable; bad input is a 400
with the reason; the page works as a plain form and boosted by htmx."""
from __future__ import annotations

import pytest

from accounts import service
from core.db import db
from tests.conftest import PASSWORD

pytestmark = pytest.mark.usefixtures("logins_required")


def accounts(app):
    with app.app_context():
        return [(a.name, a.role, a.disabled) for a in service.list_accounts(db.session)]


def test_admin_adds_changes_and_disables(app, login):
    """Tried: an admin adds bob (ranker), makes him a curator, disables him (bob's open session ends, he cannot
    log in), enables him again (he can)."""
    admin, bob = app.test_client(), app.test_client()
    login(admin, "admin", "root")
    page = admin.get("/users").get_data(as_text=True)
    assert 'id="user-root"' in page and "(you)" in page
    added = admin.post("/users", data={"name": "bob", "role": "ranker", "password": PASSWORD, "password2": PASSWORD},
                       follow_redirects=True)
    assert added.status_code == 200 and "Added bob (ranker)." in added.get_data(as_text=True)
    assert bob.post("/login", data={"name": "bob", "password": PASSWORD}).status_code == 302
    admin.post("/users/bob", data={"role": "curator"})
    assert ("bob", "curator", False) in accounts(app)
    admin.post("/users/bob", data={"action": "disable"})
    assert ("bob", "curator", True) in accounts(app)
    assert bob.get("/").status_code == 302
    assert bob.post("/login", data={"name": "bob", "password": PASSWORD}).status_code == 401
    admin.post("/users/bob", data={"action": "enable"}, headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert bob.post("/login", data={"name": "bob", "password": PASSWORD}).status_code == 302


def test_bad_input_is_refused_with_the_reason(app, login):
    """Tried: two different passwords, a short one, a bad name, a taken name, an unknown role, an unknown account,
    and the only admin disabling herself. Each answers 400 with the reason on the page; nothing changes."""
    admin = app.test_client()
    login(admin, "admin", "root")
    good = {"name": "bob", "role": "ranker", "password": PASSWORD, "password2": PASSWORD}
    for change, message in (({"password2": "other password"}, "the two passwords differ"),
                            ({"password": "short", "password2": "short"}, "at least 8 characters"),
                            ({"name": "bob/../x"}, "an account name is"), ({"name": "root"}, "already exists"),
                            ({"role": "owner"}, "the role must be one of")):
        response = admin.post("/users", data={**good, **change})
        assert response.status_code == 400 and message in response.get_data(as_text=True), change
    for url, data, message in (("/users/nobody", {"role": "viewer"}, "no account named"),
                               ("/users/root", {"action": "disable"}, "last enabled admin"),
                               ("/users/root", {"role": "viewer"}, "last enabled admin")):
        response = admin.post(url, data=data)
        assert response.status_code == 400 and message in response.get_data(as_text=True), url
    assert accounts(app) == [("root", "admin", False)]
