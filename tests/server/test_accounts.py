"""Accounts, groups and tokens (`services.accounts`, the /api/auth admin routes): the rules, and
the access matrix of every new route — anonymous, a plain user, a group admin, an archive admin,
a disabled account and a revoked token."""

from __future__ import annotations

import jwt
import pytest
from sqlalchemy import select

from brainlife.server.errors import BadRequest, Conflict, NotFound
from brainlife.server.models import AuthToken, User
from brainlife.server.services import accounts, auth

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch):
    """Argon2 at its lowest cost: these tests pin rules, not the hash's cost (test_auth.py
    pins that)."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    auth._dummy_hash.cache_clear()
    yield
    auth._dummy_hash.cache_clear()


@pytest.fixture
def people(archive):
    """root (archive admin), ann and bob (users), dis (disabled), and group 'lab' run by ann."""
    with archive.session() as s:
        root = accounts.add_user(s, username="root", password=PASSWORD, admin=True)
        ann = accounts.add_user(s, username="ann", password=PASSWORD, email="ann@lab.org")
        bob = accounts.add_user(s, username="bob", password=PASSWORD)
        dis = accounts.add_user(s, username="dis", password=PASSWORD)
        group = accounts.add_group(s, name="lab", admins=[ann.sub], members=[bob.sub])
        s.commit()
        ids = {"root": root.sub, "ann": ann.sub, "bob": bob.sub, "dis": dis.sub}
        return {**ids, "lab": group.id}


def token(http, name: str, **extra) -> str:
    r = http.post("/api/auth/local/auth", json={"username": name, "password": PASSWORD, **extra})
    assert r.status_code == 200, r.text
    return r.json()["jwt"]


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def tokens(http, archive, people):
    """A token for each caller kind; 'disabled' and 'revoked' were valid when issued."""
    out = {name: token(http, name) for name in ("root", "ann", "bob", "dis")}
    out["revoked"] = token(http, "bob")
    with archive.session() as s:
        accounts.set_active(s, s.get(User, people["dis"]), False)
        jti = jwt.decode(out["revoked"], options={"verify_signature": False})["jti"]
        accounts.revoke_token(s, jti)
        s.commit()
    return out


# -- the rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"username": "", "password": PASSWORD}, "Invalid username"),
        ({"username": "../etc", "password": PASSWORD}, "Invalid username"),
        ({"username": "a" * 65, "password": PASSWORD}, "Invalid username"),
        ({"username": "ok", "password": "Zq9#"}, "at least 8"),
        ({"username": "ok", "password": "x" * 1025}, "at most 1024"),
        ({"username": "ok", "password": None}, "Send a password"),
        ({"username": "ok", "password": PASSWORD, "email": "no-at-sign"}, "e-mail"),
        ({"username": "ok", "password": PASSWORD, "fullname": "x" * 300}, "too long"),
    ],
)
def test_bad_accounts_are_refused(archive, fields, message) -> None:
    with archive.session() as s, pytest.raises(BadRequest, match=message) as info:
        accounts.add_user(s, **fields)
    if fields.get("password"):
        assert str(fields["password"]) not in info.value.message


def test_usernames_and_emails_are_unique_ignoring_case(archive, people) -> None:
    with archive.session() as s:
        with pytest.raises(Conflict, match="taken"):
            accounts.add_user(s, username="ANN", password=PASSWORD)
        with pytest.raises(Conflict, match="another account"):
            accounts.add_user(s, username="ann2", password=PASSWORD, email="Ann@Lab.org")


def test_passwords_are_argon2_hashes(archive, people) -> None:
    with archive.session() as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "ann"))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_the_last_admin_stays(archive, people) -> None:
    with archive.session() as s:
        root = s.get(User, people["root"])
        with pytest.raises(Conflict, match="last active admin"):
            accounts.set_active(s, root, False)
        with pytest.raises(Conflict, match="last active admin"):
            accounts.set_admin(s, root, False)
        accounts.set_admin(s, s.get(User, people["ann"]), True)
        accounts.set_admin(s, root, False)  # another admin exists now
        assert not accounts.is_admin(root)


def test_group_ids_are_new_to_groups_and_projects(archive, people) -> None:
    """A project's group id (made by the demo or an import without a group row) is not
    handed out again: tokens carrying it would reach that project's tasks."""
    from tests.server import factories as f

    with archive.session() as s:
        f.project(s, group_id=5000)
        assert accounts.add_group(s, name="two").id == 5001


def test_members_change_by_name(archive, people) -> None:
    with archive.session() as s:
        group = accounts.find_group(s, "lab")
        got = accounts.change_members(
            s, group, add=[people["dis"]], remove=[people["bob"]], add_admins=[people["root"]]
        )
        assert got == accounts.Members(
            admins=sorted([people["ann"], people["root"]]), members=[people["dis"]]
        )
        with pytest.raises(NotFound):
            accounts.find_group(s, "nope")
        with pytest.raises(BadRequest, match="No user with sub 999"):
            accounts.change_members(s, group, add=[999])


# -- tokens ------------------------------------------------------------------------------


def test_login_tokens_are_recorded_and_bounded(archive, http, people, settings) -> None:
    value = token(http, "ann", ttl=10 * 365 * 24 * 3600 * 1000)  # ten years asked
    claims = jwt.decode(value, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= settings.max_token_days * 86400 + 1
    with archive.session() as s:
        row = s.get(AuthToken, claims["jti"])
    assert row is not None and row.sub == people["ann"] and row.label == "login"


def test_a_revoked_token_is_refused_with_a_clear_401(http, tokens) -> None:
    r = http.get("/api/auth/me", headers=bearer(tokens["revoked"]))
    assert r.status_code == 401
    assert "revoked" in r.json()["message"] and "bl login" in r.json()["message"]
    # the refresh of a revoked token is refused too: revoking cannot be outrun
    r = http.post("/api/auth/refresh", headers=bearer(tokens["revoked"]), json={})
    assert r.status_code == 401


def test_a_disabled_accounts_token_is_refused(http, tokens) -> None:
    r = http.get("/api/warehouse/project", headers=bearer(tokens["dis"]))
    assert r.status_code == 401
    assert "disabled" in r.json()["message"]
    r = http.post("/api/auth/local/auth", json={"username": "dis", "password": PASSWORD})
    assert r.status_code == 401


def test_the_token_check_is_one_statement_outside_any_transaction(archive, http, tokens) -> None:
    """Every request pays the check: one statement (token and account together), run in
    autocommit (on PostgreSQL no BEGIN and ROLLBACK round trips), under the request's budget;
    `GET /api/auth/me`, a read-only route, then reads the account in that same autocommit
    session, on the same connection (`onecall`: the check reuses the route's read session)."""
    from sqlalchemy import event

    from brainlife.server.db import QUERY_TIMEOUT

    seen: list[tuple[str, dict]] = []

    def record(conn, _cursor, statement, *_rest) -> None:
        seen.append((statement, conn.get_execution_options()))

    checkouts: list[object] = []

    def checkout(*_args) -> None:
        checkouts.append(_args)

    event.listen(archive.engine, "before_cursor_execute", record)
    event.listen(archive.engine.pool, "checkout", checkout)
    try:
        r = http.get("/api/auth/me", headers=bearer(tokens["ann"]))
    finally:
        event.remove(archive.engine, "before_cursor_execute", record)
        event.remove(archive.engine.pool, "checkout", checkout)
    assert r.status_code == 200 and r.json()["username"] == "ann"
    assert len(seen) == 2, [s for s, _ in seen]
    (check, check_options), (me, me_options) = seen
    assert "auth_tokens" in check and "users" in check
    assert check_options.get("isolation_level") == "AUTOCOMMIT"
    assert check_options.get(QUERY_TIMEOUT) == archive.settings.query_timeout
    assert "auth_tokens" not in me and me_options.get("isolation_level") == "AUTOCOMMIT"
    assert len(checkouts) == 1  # one connection taken from the pool for both


def test_a_token_id_the_archive_never_issued_is_refused(archive, http, people) -> None:
    forged = archive.signer.sign({"sub": people["ann"], "jti": "0" * 32}, 60_000)
    r = http.get("/api/auth/me", headers=bearer(forged))
    assert r.status_code == 401


def test_a_new_password_revokes_the_accounts_tokens(archive, http, people) -> None:
    old = token(http, "ann")
    with archive.session() as s:
        accounts.set_password(s, s.get(User, people["ann"]), "another long password")
        s.commit()
    assert http.get("/api/auth/me", headers=bearer(old)).status_code == 401


def test_users_list_and_revoke_their_own_tokens(http, tokens, people) -> None:
    mine = http.get("/api/auth/tokens", headers=bearer(tokens["bob"])).json()["tokens"]
    assert {t["sub"] for t in mine} == {people["bob"]} and len(mine) == 2
    assert all("jwt" not in t and "token" not in t for t in mine)
    live = jwt.decode(tokens["bob"], options={"verify_signature": False})["jti"]
    # someone else's token is "not found" to ann (she cannot learn it exists)
    r = http.delete(f"/api/auth/token/{live}", headers=bearer(tokens["ann"]))
    assert r.status_code == 404
    r = http.delete(f"/api/auth/token/{live}", headers=bearer(tokens["bob"]))
    assert r.status_code == 200 and r.json()["revoked"]
    assert http.get("/api/auth/me", headers=bearer(tokens["bob"])).status_code == 401


# -- sign-up -----------------------------------------------------------------------------


def test_signup_is_off_by_default(http) -> None:
    r = http.post("/api/auth/signup", json={"username": "eve", "password": PASSWORD})
    assert r.status_code == 403
    assert "bl admin user add" in r.json()["message"]


def test_signup_when_allowed(archive, http) -> None:
    archive.settings.allow_signup = True
    body = {"username": "eve", "password": PASSWORD, "email": "eve@x.org"}
    r = http.post("/api/auth/signup", json=body)
    assert r.status_code == 200, r.text
    value = r.json()["jwt"]
    me = http.get("/api/auth/me", headers=bearer(value)).json()
    assert me["username"] == "eve"
    claims = jwt.decode(value, options={"verify_signature": False})
    assert "admin" not in (claims["scopes"].get("auth") or [])  # nobody signs up as admin
    r = http.post("/api/auth/signup", json={**body, "admin": True, "username": "eve"})
    assert r.status_code == 409
    r = http.post("/api/auth/signup", json={"username": "mal", "password": "short"})
    assert r.status_code == 400 and "at least 8" in r.json()["message"]


# -- the access matrix of the admin routes ----------------------------------------------

CALLERS = ("anonymous", "bob", "ann", "root", "dis", "revoked")


def call(http, tokens, people, who: str, route: str):
    h = {} if who == "anonymous" else bearer(tokens[who])
    method, path, body = {
        "list users": ("GET", "/api/auth/users", None),
        "add user": ("POST", "/api/auth/user", {"username": "new1", "password": PASSWORD}),
        "disable user": ("PUT", f"/api/auth/user/{people['bob']}", {"active": False}),
        "list groups": ("GET", "/api/auth/groups", None),
        "add group": ("POST", "/api/auth/group", {"name": "g2"}),
        "change group": ("PUT", f"/api/auth/group/{people['lab']}", {"desc": "d"}),
        "list tokens": ("GET", "/api/auth/tokens", None),
        "others' tokens": ("GET", f"/api/auth/tokens?sub={people['ann']}", None),
    }[route]
    return http.request(method, path, headers=h, json=body)


# expected status per caller: bob is a member of 'lab', ann its admin, root the archive admin
MATRIX = {
    "list users": {"bob": 403, "ann": 403, "root": 200},
    "add user": {"bob": 403, "ann": 403, "root": 200},
    "disable user": {"bob": 403, "ann": 403, "root": 200},
    "list groups": {"bob": 200, "ann": 200, "root": 200},
    "add group": {"bob": 200, "ann": 200, "root": 200},
    "change group": {"bob": 403, "ann": 200, "root": 200},
    "list tokens": {"bob": 200, "ann": 200, "root": 200},
    "others' tokens": {"bob": 403, "ann": 200, "root": 200},
}


@pytest.mark.parametrize("route", MATRIX)
@pytest.mark.parametrize("who", CALLERS)
def test_admin_routes_access_matrix(http, tokens, people, route: str, who: str) -> None:
    expected = {"anonymous": 401, "dis": 401, "revoked": 401, **MATRIX[route]}[who]
    r = call(http, tokens, people, who, route)
    assert r.status_code == expected, r.text
    if expected != 200:
        assert r.json()["message"]


def test_group_list_shows_only_ones_own_groups(http, tokens, people) -> None:
    mine = http.get("/api/auth/groups", headers=bearer(tokens["bob"])).json()
    assert [g["id"] for g in mine] == [people["lab"]]
    assert mine[0]["admins"] == [people["ann"]] and mine[0]["members"] == [people["bob"]]
    r = http.post("/api/auth/group", headers=bearer(tokens["bob"]), json={"name": "bob's"})
    assert r.json()["group"]["admins"] == [people["bob"]]


def test_an_admin_disables_and_the_token_dies(http, tokens, people) -> None:
    r = http.put(
        f"/api/auth/user/{people['bob']}", headers=bearer(tokens["root"]), json={"active": False}
    )
    assert r.status_code == 200 and r.json()["active"] is False
    assert "password_hash" not in r.json()
    assert http.get("/api/auth/me", headers=bearer(tokens["bob"])).status_code == 401


def test_an_admin_renames_an_account_and_its_tokens_die(http, tokens, people) -> None:
    """The new name logs in, the old one no longer does, the old tokens (which carry the old
    name) are refused; a name taken ignoring case is a 409, an invalid one a 400, and an
    account that is not an admin cannot rename anyone."""
    root, url = bearer(tokens["root"]), f"/api/auth/user/{people['bob']}"
    assert http.put(url, headers=root, json={"username": "ANN"}).status_code == 409
    assert http.put(url, headers=root, json={"username": "../x"}).status_code == 400
    assert http.put(url, headers=bearer(tokens["ann"]), json={"username": "x"}).status_code == 403
    assert http.get("/api/auth/me", headers=bearer(tokens["bob"])).status_code == 200
    r = http.put(url, headers=root, json={"username": "robert"})
    assert r.status_code == 200 and r.json()["username"] == "robert", r.text
    assert http.get("/api/auth/me", headers=bearer(tokens["bob"])).status_code == 401
    fresh = token(http, "robert")
    assert jwt.decode(fresh, options={"verify_signature": False})["profile"]["username"] == "robert"
    old = http.post("/api/auth/local/auth", json={"username": "bob", "password": PASSWORD})
    assert old.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"active": "no"},
        {"admin": 1},
        {"password": "short"},
        {"role": "admin"},  # unknown field: refused, not ignored
        [],
    ],
)
def test_bad_user_changes_are_400(http, tokens, people, body) -> None:
    r = http.put(f"/api/auth/user/{people['bob']}", headers=bearer(tokens["root"]), json=body)
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("extra", [{"role": "admin"}, {"scopes": {"auth": ["admin"]}}, {"ttl": 1}])
def test_unknown_fields_of_a_new_user_are_400_as_for_a_change(http, tokens, extra) -> None:
    """POST /user refuses what it does not know (it ignored it) with PUT's message shape, and
    makes nothing; every field it documents is still taken."""
    root = bearer(tokens["root"])
    body = {"username": "newbie", "password": PASSWORD, **extra}
    r = http.post("/api/auth/user", headers=root, json=body)
    assert r.status_code == 400, r.text
    (field,) = extra
    known = "admin, email, fullname, password, username"
    assert r.json()["message"] == f"Unknown field(s) {field}; use {known}."
    put = http.put("/api/auth/user/1", headers=root, json={"role": "x"}).json()["message"]
    assert put.startswith("Unknown field(s) role; use ")
    users = http.get("/api/auth/users", headers=root).json()["users"]
    assert "newbie" not in [u["username"] for u in users]
    full = {"username": "newbie", "password": PASSWORD, "email": "n@x.org", "fullname": "N B"}
    r = http.post("/api/auth/user", headers=root, json={**full, "admin": False})
    assert r.status_code == 200 and r.json()["fullname"] == "N B", r.text


def test_group_changes_keep_an_admin(http, tokens, people) -> None:
    path = f"/api/auth/group/{people['lab']}"
    r = http.put(path, headers=bearer(tokens["ann"]), json={"admins": []})
    assert r.status_code == 400
    r = http.put(path, headers=bearer(tokens["ann"]), json={"members": ["x"]})
    assert r.status_code == 400
    r = http.put(path, headers=bearer(tokens["ann"]), json={"members": [people["root"]]})
    assert r.status_code == 200 and r.json()["members"] == [people["root"]]


@pytest.mark.parametrize("ref", ["²", "١٢", "9" * 40, "99999999999", str(2**31), "", "%00"])
def test_odd_ids_are_400_or_404_never_500(http, tokens, ref) -> None:
    """Digits `int` refuses (superscripts, Arabic-Indic), huge numbers (also those beyond
    PostgreSQL's 32-bit INTEGER, which SQLite holds), empty."""
    root = bearer(tokens["root"])
    r = http.put(f"/api/auth/group/{ref}", headers=root, json={"desc": "x"})
    assert r.status_code in (404, 405), r.text
    r = http.put(f"/api/auth/user/{ref}", headers=root, json={"active": True})
    assert r.status_code in (404, 405), r.text
    r = http.post("/api/auth/group", headers=root, json={"name": "g", "members": [ref]})
    assert r.status_code == 400, r.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/auth/group", {"name": "lab\u0000b"}),
        ("/api/auth/group", {"name": "lab", "desc": "a\u0000"}),
        ("/api/auth/user", {"username": "zed", "password": "12345678", "fullname": "Z\u0000"}),
        ("/api/auth/user", {"username": "zed", "password": "12345678", "email": "z\u0000@x.org"}),
    ],
)
def test_nul_in_names_is_a_400_on_every_engine(http, tokens, path, body) -> None:
    """PostgreSQL text cannot hold U+0000: refused with the field's name on SQLite too, so an
    archive behaves the same whichever database holds it, and moves between them."""
    r = http.post(path, headers=bearer(tokens["root"]), json=body)
    assert r.status_code == 400, r.text
    assert "NUL" in r.json()["message"] or "e-mail" in r.json()["message"], r.text


# -- requests at the same moment ----------------------------------------------------------


def at_once(count: int, send) -> list:
    """`send(i)` from `count` threads released together: the responses, in order."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    start = threading.Barrier(count)

    def run(i: int):
        start.wait(timeout=30)
        return send(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_accounts_made_at_once_with_one_name_make_one_account(http, tokens) -> None:
    """The free-name check and the insert are one step (`db.lock_writes`): the others are told
    the name (or e-mail) is taken, never a 500, and no two accounts differ only in case."""
    root = bearer(tokens["root"])
    names = ["twin", "Twin", "TWIN", "twin", "tWin", "twin"]
    got = at_once(
        len(names),
        lambda i: http.post(
            "/api/auth/user", headers=root, json={"username": names[i], "password": PASSWORD}
        ),
    )
    assert sorted(r.status_code for r in got) == [200] + [409] * (len(names) - 1), [
        r.text for r in got
    ]
    assert all("is taken" in r.json()["message"] for r in got if r.status_code == 409)
    got = at_once(
        len(names),
        lambda i: http.post(
            "/api/auth/user",
            headers=root,
            json={"username": f"mail{i}", "password": PASSWORD, "email": "same@lab.org"},
        ),
    )
    assert sorted(r.status_code for r in got) == [200] + [409] * (len(names) - 1), [
        r.text for r in got
    ]
    users = http.get("/api/auth/users", headers=root).json()["users"]
    assert sum(u["username"].lower() == "twin" for u in users) == 1
    assert sum(u["email"] == "same@lab.org" for u in users) == 1


def test_groups_and_projects_made_at_once_get_distinct_group_ids(http, tokens) -> None:
    """Each new group id is above every other (`accounts.next_group_id`), allocated one request
    at a time: none fails on the groups' primary key."""
    ann = bearer(tokens["ann"])
    got = at_once(
        8,
        lambda i: (
            http.post("/api/auth/group", headers=ann, json={"name": f"g{i}"})
            if i % 2
            else http.post("/api/warehouse/project", headers=ann, json={"name": f"p{i}"})
        ),
    )
    assert [r.status_code for r in got] == [200] * 8, [r.text for r in got]
    ids = [r.json()["group"]["id"] if i % 2 else r.json()["group_id"] for i, r in enumerate(got)]
    assert len(set(ids)) == 8


def test_a_groups_members_replaced_by_several_requests_at_once(http, tokens, people) -> None:
    """`PUT /group/:id` deletes and inserts the member rows: at once, on PostgreSQL, the
    duplicate keys were 500s; one at a time now, all succeed."""
    ann = bearer(tokens["ann"])
    bodies = [{"members": [people["bob"], people["root"]]}, {"members": [people["root"]]}] * 4
    got = at_once(
        len(bodies),
        lambda i: http.put(f"/api/auth/group/{people['lab']}", headers=ann, json=bodies[i]),
    )
    assert [r.status_code for r in got] == [200] * len(bodies), [r.text for r in got]
    [group] = [
        g for g in http.get("/api/auth/groups", headers=ann).json() if g["id"] == people["lab"]
    ]
    assert group["admins"] == [people["ann"]]
    assert group["members"] in (sorted([people["bob"], people["root"]]), [people["root"]])


def test_the_services_check_folds_case_as_the_index_does(archive):
    """The check compared the database's lower() of the stored address with Python's of the
    new one: SQLite's lower() folds ASCII letters only (as PostgreSQL's does under the "C"
    collation of every column), so 'ÉMILE@X.ORG' passed the check against 'Émile@x.org' and
    only the index refused it (the backstop's message, naming no address). Both sides now fold
    alike, on every engine; and `bl admin user` finds an account by such an address."""
    with archive.session() as session:
        accounts.add_user(session, username="emile", password="a-password", email="Émile@x.org")
        session.commit()
    with archive.session() as session, pytest.raises(Conflict) as info:
        accounts.add_user(session, username="e2", password="a-password", email="ÉMILE@X.ORG")
    assert info.value.message == "The e-mail address 'ÉMILE@X.ORG' belongs to another account."
    assert info.value.__cause__ is None  # the service's refusal, not the index's
    with archive.session() as session:
        assert accounts.find_user(session, "Émile@X.org").username == "emile"
        # 'É' and 'é' are not folded by either side, on either engine: the check and the index
        # agree that this address is another one
        accounts.add_user(session, username="e3", password="a-password", email="émile@x.org")
        session.commit()
