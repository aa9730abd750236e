"""The auth service: login (JSON and form), tokens, refresh, slow-down and lockout."""

from __future__ import annotations

import time

import jwt
import pytest

from brainlife.server.models import Group, GroupMember, User
from brainlife.server.services.auth import create_user


@pytest.fixture
def alice(archive):
    with archive.session() as session:
        user = create_user(
            session,
            username="alice",
            password="s3cret",
            email="alice@example.org",
            fullname="Alice A",
        )
        session.add(Group(id=851, name="g851"))
        session.add(Group(id=12, name="g12"))
        session.flush()
        session.add(GroupMember(group_id=851, sub=user.sub, role="member"))
        session.add(GroupMember(group_id=12, sub=user.sub, role="admin"))
        session.commit()
        return user.sub


@pytest.fixture
def cheap_hashes(monkeypatch):
    """Argon2 at its lowest cost, for the lockout tests that send dozens of wrong passwords: what
    they pin is the counting, and each verification at the real cost took about 0.2 s (0.6 s on
    a loaded machine). Every test process now hashes at the lowest cost anyway
    (tests/conftest.py; the default cost is pinned in test_serve_env.py): this keeps these tests
    cheap whatever that default becomes. Ask for it before `alice`, so that her hash is a cheap
    one too."""
    from argon2 import PasswordHasher

    from brainlife.server.services import auth

    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    auth._dummy_hash.cache_clear()
    yield
    auth._dummy_hash.cache_clear()


def verified_claims(archive, token: str) -> dict:  # type: ignore[no-untyped-def]
    """A token's claims, its signature checked with the archive's key (brainlife's `sub` is a
    number, which PyJWT's `sub` check refuses)."""
    return jwt.decode(
        token, archive.signer.keys.public_pem, algorithms=["RS256"], options={"verify_sub": False}
    )


def login(http, **body):
    return http.post("/api/auth/local/auth", json=body)


def test_login_json_returns_brainlife_shape_and_claims(http, archive, alice):
    res = login(http, username="alice", password="s3cret", ttl=3600_000)
    assert res.status_code == 200
    body = res.json()
    assert body["message"] == "Login Success"
    assert body["sub"] == alice
    header = jwt.get_unverified_header(body["jwt"])
    assert header["alg"] == "RS256"
    claims = verified_claims(archive, body["jwt"])
    assert claims["sub"] == alice and isinstance(claims["sub"], int)
    assert isinstance(claims["exp"], float)
    assert abs(claims["exp"] - (time.time() + 3600)) < 30
    assert isinstance(claims["iat"], int)
    assert claims["iss"] == archive.settings.issuer
    assert claims["gids"] == [12, 0, 851]  # admin groups, 0, member groups
    assert claims["scopes"] == {}
    assert claims["profile"]["username"] == "alice"


def test_login_form_encoded_and_by_email(http, alice):
    res = http.post(
        "/api/auth/local/auth", data={"username": "alice@example.org", "password": "s3cret"}
    )
    assert res.status_code == 200
    assert res.json()["sub"] == alice


def test_wrong_password_is_401_with_message(http, alice):
    res = login(http, username="alice", password="nope")
    assert res.status_code == 401
    assert res.json() == {"message": "Incorrect user/password"}
    res = login(http, username="nobody", password="nope")
    assert res.status_code == 401
    assert res.json() == {"message": "Incorrect user/password"}  # no word of who exists


def test_a_login_to_an_archive_without_accounts_says_how_to_make_the_first(http):
    res = login(http, username="lab", password="first password")
    assert res.status_code == 401
    message = res.json()["message"]
    assert message.startswith("Incorrect user/password (this archive has no accounts yet")
    assert "bl admin --data-dir DIR user add NAME --admin" in message


def test_missing_fields_and_bad_ttl_are_400(http, alice):
    assert login(http, username="alice").status_code == 400
    res = login(http, username="alice", password="s3cret", ttl="soon")
    assert res.status_code == 400
    assert "ttl" in res.json()["message"]
    res = http.post(
        "/api/auth/local/auth", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert res.status_code == 400


def test_repeated_failures_lock_the_account(cheap_hashes, http, archive, alice):
    for _ in range(archive.settings.max_failed_logins):
        assert login(http, username="alice", password="bad").status_code == 401
    res = login(http, username="alice", password="s3cret")
    assert res.status_code == 429
    assert "Too many failed logins" in res.json()["message"]
    assert int(res.headers["retry-after"]) > 0


def test_password_is_hashed(archive, alice):
    with archive.session() as session:
        user = session.get(User, alice)
        assert user is not None and user.password_hash is not None
        assert "s3cret" not in user.password_hash
        assert user.password_hash.startswith("$argon2id$")


def test_refresh_gives_new_token_and_can_only_narrow(http, archive, alice):
    token = login(http, username="alice", password="s3cret").json()["jwt"]
    res = http.post(
        "/api/auth/refresh",
        json={"ttl": 60_000, "gids": [851, 999], "clearProfile": True},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert res.status_code == 200
    claims = verified_claims(archive, res.json()["jwt"])
    assert claims["gids"] == [851]
    assert "profile" not in claims
    assert claims["exp"] - time.time() < 120


def test_refresh_keeps_only_the_group_ids_it_was_given_never_500(http, archive, alice):
    """`gids` entries that are not numbers (lists, objects: unhashable) are dropped like ids the
    caller does not have, as are `true` and `851.0`."""
    token = login(http, username="alice", password="s3cret").json()["jwt"]
    res = http.post(
        "/api/auth/refresh",
        json={"gids": [[851], {"a": 1}, 851, True, 12.0, "12", None]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert res.status_code == 200, res.text
    claims = verified_claims(archive, res.json()["jwt"])
    assert claims["gids"] == [851]


def test_a_ttl_beyond_any_float_gets_the_longest_token(http, archive, alice):
    """An integer too large for a float (`float(10**400)` raises OverflowError) is a ttl longer
    than allowed: the archive's maximum, as `1e400` is."""
    huge = int("9" * 400)
    res = login(http, username="alice", password="s3cret", ttl=huge)
    assert res.status_code == 200, res.text
    token = res.json()["jwt"]
    longest = time.time() + archive.settings.max_token_ms / 1000
    for answer in (
        res,
        http.post(
            "/api/auth/refresh", json={"ttl": huge}, headers={"Authorization": f"Bearer {token}"}
        ),
    ):
        assert answer.status_code == 200, answer.text
        claims = jwt.decode(answer.json()["jwt"], options={"verify_signature": False})
        assert abs(claims["exp"] - longest) < 60


def test_expired_and_forged_tokens_are_401_saying_log_in_again(http, archive, alice):
    expired = archive.signer.sign({"sub": alice, "gids": [], "scopes": {}}, ttl_ms=-1000)
    res = http.post("/api/auth/refresh", headers={"Authorization": f"Bearer {expired}"})
    assert res.status_code == 401
    assert "expired" in res.json()["message"] and "bl login" in res.json()["message"]
    forged = jwt.encode(
        {"sub": alice, "exp": time.time() + 60},
        "not-the-key-but-long-enough-for-hs256!!",
        algorithm="HS256",
    )
    res = http.get("/api/auth/me", headers={"Authorization": f"Bearer {forged}"})
    assert res.status_code == 401
    assert "bl login" in res.json()["message"]
    res = http.get("/api/auth/me")
    assert res.status_code == 401


def test_me_hides_the_password_hash(http, alice):
    token = login(http, username="alice", password="s3cret").json()["jwt"]
    me = http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["username"] == "alice"
    assert me["password_hash"] is True


def test_unknown_route_is_json_404(http):
    res = http.get("/api/auth/nope")
    assert res.status_code == 404
    assert "message" in res.json()


# --- lockout and timing (services.auth's rules) ----------------------------------------------


def client_at(app, address: str):
    from fastapi.testclient import TestClient

    return TestClient(app, client=(address, 40000))


def test_the_lockout_counts_the_account_however_it_is_named(cheap_hashes, http, archive, alice):
    for i in range(archive.settings.max_failed_logins):
        name = "alice" if i % 2 else "alice@example.org"
        assert login(http, username=name, password="bad").status_code == 401
    for name in ("alice", "alice@example.org"):
        assert login(http, username=name, password="s3cret").status_code == 429


def test_a_flood_from_one_address_does_not_lock_the_owner_out_elsewhere(
    cheap_hashes, app, archive, alice
):
    with client_at(app, "203.0.113.9") as attacker, client_at(app, "198.51.100.7") as owner:
        for _ in range(archive.settings.max_failed_logins + 3):
            login(attacker, username="alice", password="guess")
        r = login(attacker, username="alice", password="s3cret")
        assert r.status_code == 429
        assert "from your address" in r.json()["message"]
        assert login(owner, username="alice", password="s3cret").status_code == 200


def test_one_address_guessing_many_accounts_is_limited(cheap_hashes, app, archive, alice):
    limit = archive.settings.max_failed_logins_per_client
    with client_at(app, "203.0.113.9") as sprayer, client_at(app, "198.51.100.7") as owner:
        for i in range(limit):
            assert login(sprayer, username=f"user{i}", password="x").status_code == 401
        r = login(sprayer, username="alice", password="s3cret")
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) > 0
        assert login(owner, username="alice", password="s3cret").status_code == 200


def test_an_unknown_user_costs_an_argon2_verification_like_a_known_one(http, monkeypatch, alice):
    from argon2 import PasswordHasher

    from brainlife.server.services import auth

    verified: list[str] = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash, password):
            verified.append(hash)
            return super().verify(hash, password)

    current = auth._hasher  # the cost alice's hash was made at
    monkeypatch.setattr(
        auth,
        "_hasher",
        CountingHasher(current.time_cost, current.memory_cost, current.parallelism),
    )
    auth._dummy_hash.cache_clear()
    assert login(http, username="alice", password="wrong").status_code == 401
    assert login(http, username="nobody", password="wrong").status_code == 401
    assert len(verified) == 2
    known, unknown = verified
    assert known.split("$")[:4] == unknown.split("$")[:4]  # same algorithm and cost parameters


def test_the_signing_key_is_parsed_once_not_per_token(http, archive, alice, monkeypatch):
    """Each token used to parse (and check) the RSA key from its PEM again, ~50 ms of CPU per
    login; the signer keeps the parsed key. Logins, refreshes and the keys' own checks still
    pass: each token verifies against the archive's public key."""
    from cryptography.hazmat.primitives import serialization
    from jwt import algorithms

    parses: list[int] = []
    real = serialization.load_pem_private_key

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        parses.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(algorithms, "load_pem_private_key", counting)
    monkeypatch.setattr(serialization, "load_pem_private_key", counting)
    tokens = []
    for _ in range(3):
        r = http.post("/api/auth/local/auth", json={"username": "alice", "password": "s3cret"})
        assert r.status_code == 200, r.text
        tokens.append(r.json()["jwt"])
    refreshed = http.post(
        "/api/auth/refresh", headers={"Authorization": f"Bearer {tokens[0]}"}, json={}
    )
    assert refreshed.status_code == 200, refreshed.text
    tokens.append(refreshed.json()["jwt"])
    assert len(parses) <= 1
    for token in tokens:
        claims = verified_claims(archive, token)
        assert claims["sub"] == alice


def test_records_of_long_expired_tokens_are_purged_at_start(archive, http, alice) -> None:
    """Every login records its token: the records of tokens expired more than a week ago are
    deleted when the app starts; live ones, and ones expired lately, stay."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from brainlife.server.app import create_app
    from brainlife.server.models import AuthToken
    from brainlife.server.services.auth import purge_expired_tokens

    for _ in range(3):
        assert login(http, username="alice", password="s3cret").status_code == 200
    now = datetime.now(UTC)
    with archive.session() as s:
        jtis = sorted(s.scalars(select(AuthToken.jti)).all())
        assert len(jtis) >= 3
        old, recent = s.get(AuthToken, jtis[0]), s.get(AuthToken, jtis[1])
        assert old is not None and recent is not None
        old.expires = now - timedelta(days=8)
        recent.expires = now - timedelta(days=1)
        s.commit()
    create_app(archive=archive)
    with archive.session() as s:
        left = set(s.scalars(select(AuthToken.jti)).all())
        assert jtis[0] not in left and set(jtis[1:]) <= left
        assert purge_expired_tokens(s, now + timedelta(days=3650 * 3)) == len(left)
