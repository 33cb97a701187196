"""Logging in and out on an app that requires it: the form, wrong passwords, the rate limit, where `next` may lead,
and sessions that end when the password changes or the account is disabled."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from accounts import service
from app import create_app
from core.db import db
from core.models import LoginFailure
from tests.conftest import PASSWORD

pytestmark = pytest.mark.usefixtures("logins_required")


def log_in(client, name, password=PASSWORD, next_="/", **kwargs):
    return client.post("/login", data={"name": name, "password": password, "next": next_}, **kwargs)


def test_login_and_logout(client, account):
    """Tried: a page before logging in (sent to the login form, with where to come back), a login with the right
    password (back to that page, the nav names the account), then logging out (pages need a login again)."""
    account("ann", "ranker")
    first = client.get("/rank/")
    assert first.status_code == 302 and first.location == "/login?next=/rank/"
    form = client.get(first.location).get_data(as_text=True)
    assert 'name="password"' in form and 'type="password"' in form and 'value="/rank/"' in form
    response = log_in(client, "ann", next_="/rank/")
    assert response.status_code == 302 and response.location == "/rank/"
    page = client.get("/rank/").get_data(as_text=True)
    assert "ann <small>(ranker)</small>" in page and "Log out" in page and "Ranking as <strong>ann</strong>" in page
    assert client.post("/logout").status_code == 302
    assert client.get("/rank/").status_code == 302


def test_names_are_not_case_sensitive_and_the_session_is_fresh(client, account):
    """Tried: logging in as "ANN " for the account ann, from a session that already held a value. It works, and
    nothing of the session before the login survives (no session fixation)."""
    account("ann")
    with client.session_transaction() as session:
        session["planted"] = "by someone else"
    assert log_in(client, " ANN ").status_code == 302
    with client.session_transaction() as session:
        assert "planted" not in session and session["account"]


def test_wrong_password_unknown_name_and_disabled_account_are_refused_alike(client, app, account):
    """Tried: a wrong password, a name with no account, a disabled account with its right password, an empty form.
    Each gets 401 with the same message (it does not tell which names exist), no session, and a stored failure."""
    account("ann")
    account("bob")
    with app.app_context():
        service.set_disabled(db.session, "bob")
    for name, password in (("ann", "wrong password"), ("nobody", PASSWORD), ("bob", PASSWORD), ("", "")):
        response = log_in(client, name, password)
        assert response.status_code == 401, name
        assert "Wrong name or password" in response.get_data(as_text=True)
        assert client.get("/").status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count(LoginFailure.id))) == 4


def test_rate_limit_per_name_holds_across_workers(app, account, instance_path):
    """Tried: wrong passwords for ann through one app until refused, then the right password through a second app
    on the same index (as another gunicorn worker would be): still 429 with Retry-After, because failures are
    counted in the database. Another account from the same address may still log in. When the window has passed
    (failures aged in the database), ann gets in, and her failures are cleared."""
    account("ann")
    account("bob")
    first = app.test_client()
    for _ in range(service.NAME_LIMIT):
        assert log_in(first, "ann", "guess").status_code == 401
    refused = log_in(first, "ann", "guess")
    body = refused.get_data(as_text=True)
    assert refused.status_code == 429 and "Too many attempts" in body
    wait = int(refused.headers["Retry-After"])
    assert 0 < wait <= service.WINDOW.total_seconds() and f"try again in {wait} s" in body
    other_worker = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "AUTH_REQUIRED": True,
                               "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]},
                              instance_path=instance_path)
    second = other_worker.test_client()
    assert log_in(second, "ann").status_code == 429  # the right password, but not now
    assert log_in(second, "bob").status_code == 302
    with app.app_context():
        for failure in db.session.scalars(select(LoginFailure)):
            failure.created -= service.WINDOW + dt.timedelta(seconds=1)
        db.session.commit()
    assert log_in(second, "ann").status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count(LoginFailure.id)).where(LoginFailure.name == "ann")) == 0
    with other_worker.app_context():
        db.engine.dispose()


def test_rate_limit_per_address(client, account):
    """Tried: one client address trying many different names (each below its own limit) until refused; then a
    real account's right password from that address is refused too, with 429."""
    account("ann")
    for i in range(service.ADDRESS_LIMIT):
        assert log_in(client, f"user{i}", "guess").status_code == 401
    response = log_in(client, "ann")
    assert response.status_code == 429 and "address" in response.get_data(as_text=True)
    other_address = client.post("/login", data={"name": "ann", "password": PASSWORD, "next": "/"},
                                environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other_address.status_code == 302


@pytest.mark.parametrize("target", ["https://elsewhere.example/", "//elsewhere.example/x", "/\\elsewhere.example",
                                    "javascript:alert(1)", "http:/elsewhere", "/%0d%0aSet-Cookie:x", "\t//x.example",
                                    "/ok\r\nLocation: //x"])
def test_next_never_leads_off_site(client, account, target):
    """Tried: `next` values that lead (or might lead, in some browser) to another site, in the login form's link
    and in the form sent. The login page never carries them and the login goes to a path on this site."""
    account("ann")
    page = client.get("/login", query_string={"next": target}).get_data(as_text=True)
    assert "elsewhere" not in page and "x.example" not in page
    response = log_in(client, "ann", next_=target)
    assert response.status_code == 302
    location = response.location
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location
    assert "\r" not in location and "\n" not in location


def test_a_new_password_or_disabling_ends_open_sessions(app, account):
    """Tried: ann logged in; her password changed (CLI/admin), then, logged in again, her account disabled. After
    each, her open session is no longer logged in, and her old password no longer works."""
    account("ann")
    client = app.test_client()
    assert log_in(client, "ann").status_code == 302 and client.get("/").status_code == 200
    with app.app_context():
        service.set_password(db.session, "ann", "a brand new password")
    assert client.get("/").status_code == 302
    assert log_in(client, "ann").status_code == 401
    assert log_in(client, "ann", "a brand new password").status_code == 302 and client.get("/").status_code == 200
    with app.app_context():
        service.set_disabled(db.session, "ann")
    assert client.get("/").status_code == 302


def test_login_form_works_boosted(client, account):
    """Tried: the login form sent by htmx (hx-boost on the page): a wrong password answers the form again with the
    message (htmx swaps our 4xx pages), a right one redirects like the plain form."""
    account("ann")
    boosted = {"HX-Request": "true", "HX-Boosted": "true"}
    wrong = log_in(client, "ann", "nope", headers=boosted)
    assert wrong.status_code == 401 and 'id="login-error"' in wrong.get_data(as_text=True)
    assert log_in(client, "ann", headers=boosted).status_code == 302


def test_htmx_requests_without_a_login_come_back_to_the_page_that_sent_them(client, account):
    """Tried, without a login: an htmx region request sent from the compare page (HX-Current-URL), a boosted link
    to another page, and a request that names another host as its current page. Each gets a 401 with HX-Redirect
    to the login form: `next` is the page the browser shows (its query kept), the boosted page itself, or only the
    path of the other host's address (never the host); a plain page request is still a 302 to its own address."""
    account("ann", "ranker")
    region = client.get("/rank/cat/leaderboard", headers={
        "HX-Request": "true", "HX-Current-URL": "http://localhost/rank/cat/?left=3&right=4"})
    assert region.status_code == 401
    assert region.headers["HX-Redirect"] == "/login?next=/rank/cat/?left%3D3%26right%3D4"
    boosted = client.get("/gallery/", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert boosted.status_code == 401 and boosted.headers["HX-Redirect"] == "/login?next=/gallery/"
    elsewhere = client.get("/rank/", headers={"HX-Request": "true", "HX-Current-URL": "//evil.example/x"})
    assert elsewhere.status_code == 401 and elsewhere.headers["HX-Redirect"] == "/login?next=/x"
    assert client.get("/gallery/").location == "/login?next=/gallery/"
