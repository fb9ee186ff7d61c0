"""Login throttling: failed logins per account and per client address, 429 with Retry-After,
growing lockouts, reset on success, an admin's unlock; the API and the HTML form alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from server_helpers import PASSWORD, World, post_login_form

from veritag.server import throttle
from veritag.store.models import LoginFailure

WRONG = "wrong password"


def _login(client: TestClient, who: str, password: str) -> object:
    return client.post("/api/v1/login", json={"username": who, "password": password})


def _other(w: World, host: str) -> TestClient:
    """A client of the same server coming from another address."""
    return TestClient(w.client.app, client=(host, 40000))


def _lock(client: TestClient, who: str) -> None:
    for _ in range(throttle.ACCOUNT_LIMIT):
        assert _login(client, who, WRONG).status_code == 401  # type: ignore[attr-defined]


def _assert_throttled(r: object) -> int:
    assert r.status_code == 429, r.text  # type: ignore[attr-defined]
    retry = int(r.headers["Retry-After"])  # type: ignore[attr-defined]
    assert 1 <= retry <= throttle.BASE_LOCKOUT.total_seconds()
    return retry


def test_wrong_passwords_beyond_the_limit_get_429(world: World) -> None:
    w = world
    _lock(w.client, "tut")
    r = _login(w.client, "tut", WRONG)
    _assert_throttled(r)
    assert "too many failed logins" in r.json()["detail"]  # type: ignore[attr-defined]


def test_the_right_password_is_refused_during_a_lockout_from_any_address(world: World) -> None:
    w = world
    _lock(w.client, "tut")
    _assert_throttled(_login(w.client, "tut", PASSWORD))
    _assert_throttled(
        _login(_other(w, "10.0.0.7"), "tut", PASSWORD)
    )  # the lockout is the account's


def test_unknown_names_are_locked_like_real_ones(world: World) -> None:
    w = world
    _lock(w.client, "nobody")
    _assert_throttled(_login(w.client, "nobody", WRONG))


def test_other_users_are_unaffected(world: World) -> None:
    w = world
    _lock(w.client, "tut")
    assert _login(w.client, "rev", PASSWORD).status_code == 200  # type: ignore[attr-defined]
    assert _login(w.client, "out", WRONG).status_code == 401  # type: ignore[attr-defined]
    assert w.call("tut", "GET", "/me").status_code == 200  # tokens keep working


def test_a_client_address_is_throttled_separately(world: World) -> None:
    w = world
    spray = _other(w, "10.0.0.1")
    for i in range(
        throttle.ADDRESS_LIMIT
    ):  # a different name each time: no account reaches its limit
        assert _login(spray, f"guess{i}", WRONG).status_code == 401  # type: ignore[attr-defined]
    _assert_throttled(_login(spray, "rev", PASSWORD))
    _assert_throttled(_login(spray, "guess0", WRONG))
    # The same accounts from another address are fine.
    assert _login(_other(w, "10.0.0.2"), "rev", PASSWORD).status_code == 200  # type: ignore[attr-defined]
    assert _login(w.client, "guess0", WRONG).status_code == 401  # type: ignore[attr-defined]


def test_a_successful_login_resets_the_account(world: World) -> None:
    w = world
    for _ in range(throttle.ACCOUNT_LIMIT - 1):
        assert _login(w.client, "tut", WRONG).status_code == 401  # type: ignore[attr-defined]
    assert _login(w.client, "tut", PASSWORD).status_code == 200  # type: ignore[attr-defined]
    for _ in range(throttle.ACCOUNT_LIMIT - 1):  # counting starts again from nothing
        assert _login(w.client, "tut", WRONG).status_code == 401  # type: ignore[attr-defined]
    assert _login(w.client, "tut", PASSWORD).status_code == 200  # type: ignore[attr-defined]


def test_an_admin_unlocks_an_account(world: World) -> None:
    w = world
    _lock(w.client, "tut")
    _assert_throttled(_login(w.client, "tut", PASSWORD))
    assert w.call("rev", "POST", "/users/tut/unlock").status_code == 403
    assert w.call("tut", "POST", "/users/tut/unlock").status_code == 403
    r = w.call("ana", "POST", "/users/tut/unlock")
    assert r.status_code == 200
    assert r.json() == {"username": "tut", "cleared": True}
    assert _login(w.client, "tut", PASSWORD).status_code == 200  # type: ignore[attr-defined]
    assert w.call("ana", "POST", "/users/tut/unlock").json()["cleared"] is False
    assert w.call("ana", "POST", "/users/nobody/unlock").status_code == 404


def test_the_login_form_is_throttled_too(world: World) -> None:
    w = world
    browser = _other(w, "10.0.0.3")
    for _ in range(throttle.ACCOUNT_LIMIT):
        assert post_login_form(browser, "tut", WRONG).status_code == 401  # type: ignore[attr-defined]
    r = post_login_form(browser, "tut", PASSWORD)
    _assert_throttled(r)
    assert "Too many failed logins" in r.text  # type: ignore[attr-defined]
    # The form and the API share one counter.
    _assert_throttled(_login(w.client, "tut", PASSWORD))
    assert post_login_form(_other(w, "10.0.0.3"), "rev", PASSWORD).status_code == 303  # type: ignore[attr-defined]
    assert w.call("ana", "POST", "/users/tut/unlock").status_code == 200
    assert post_login_form(browser, "tut", PASSWORD).status_code == 303  # type: ignore[attr-defined]


def test_lockouts_double_up_to_the_cap_and_quiet_counters_are_forgotten(world: World) -> None:
    store = world.store
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    s = timedelta(seconds=1)

    def fail(at: datetime) -> None:
        with store.session() as session:
            throttle.record_failure(session, "carl", "10.9.9.9", now=at)

    def retry_after(at: datetime) -> int | None:
        with store.session() as session:
            try:
                throttle.check(session, "carl", "10.9.9.8", now=at)
            except throttle.Throttled as exc:
                return exc.retry_after
        return None

    now = t0
    for _ in range(throttle.ACCOUNT_LIMIT - 1):
        fail(now)
        now += s
    assert retry_after(now) is None
    fail(now)  # the limit: locked for the base lockout
    assert retry_after(now) == 30
    lockout = throttle.BASE_LOCKOUT
    for _ in range(8):
        now += lockout  # the lockout has just ended
        assert retry_after(now) is None
        fail(now)
        lockout = min(lockout * 2, throttle.MAX_LOCKOUT)
        assert retry_after(now) == lockout.total_seconds()
    assert lockout == throttle.MAX_LOCKOUT
    # A failure more than a window after the lockout ended starts counting again.
    now += lockout + throttle.WINDOW + s
    fail(now)
    assert retry_after(now) is None
    with store.session() as session:
        rows = session.query(LoginFailure).all()
        assert sorted(r.failures for r in rows) == [1, 1]  # the account's and the address's
        throttle.forget_quiet(session, now + throttle.WINDOW + s)  # quiet for a whole window
        assert session.query(LoginFailure).count() == 0


def test_a_refused_attempt_does_not_extend_the_lockout(world: World) -> None:
    w = world
    _lock(w.client, "tut")
    for _ in range(3):
        _assert_throttled(_login(w.client, "tut", WRONG))
    with w.store.session() as session:
        row = session.get(LoginFailure, throttle._key("user", "tut"))
        assert row is not None and row.failures == throttle.ACCOUNT_LIMIT


def test_the_cli_unlocks_an_account(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from veritag import cli

    w = world
    monkeypatch.delenv("VERITAG_DATABASE_URL", raising=False)
    db = ["--db", w.store.engine.url.render_as_string(hide_password=False)]
    _lock(w.client, "tut")
    _assert_throttled(_login(w.client, "tut", PASSWORD))
    result = CliRunner().invoke(cli.app, ["user", "unlock", "tut", *db])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "unlocked" in result.stdout
    assert _login(w.client, "tut", PASSWORD).status_code == 200  # type: ignore[attr-defined]
    result = CliRunner().invoke(cli.app, ["user", "unlock", "nobody", *db])
    assert result.exit_code == 1
