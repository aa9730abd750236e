"""The write rules (`access.writable_projects`, `access.administered_projects`) as SQL, over
every kind of caller and project: admins and members write data objects, only admins edit the
project, nobody writes into a removed project, archive admins do everything else."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from brainlife.server import access
from brainlife.server.models import Project
from brainlife.server.principal import Principal
from tests.server import factories as f

ADMIN, MEMBER, GUEST, OUTSIDER, SITE_ADMIN = 10, 11, 12, 13, 99


@pytest.fixture
def projects(archive):
    with archive.session() as s:
        roles = {"admins": [ADMIN], "members": [MEMBER], "guests": [GUEST]}
        rows = {
            "public": f.project(s, access="public", **roles),
            "private": f.project(s, access="private", **roles),
            "listed": f.project(s, access="private", listed=True, **roles),
            "removed": f.project(s, access="public", removed=True, **roles),
            # the same people, but in no role: nobody but an archive admin may write here
            "foreign": f.project(s, access="public", admins=[1], members=[2], guests=[3]),
        }
        s.commit()
        return {row.id: name for name, row in rows.items()}


def principal(who: str) -> Principal | None:
    if who == "anonymous":
        return None
    if who == "site_admin":
        return Principal(sub=SITE_ADMIN, scopes={"warehouse": ["user", "admin"]})
    if who == "amaretti_admin":  # an admin of another service is no warehouse admin
        return Principal(sub=SITE_ADMIN, scopes={"amaretti": ["user", "admin"]})
    sub = {"admin": ADMIN, "member": MEMBER, "guest": GUEST, "outsider": OUTSIDER}[who]
    return Principal(sub=sub, scopes={"warehouse": ["user"]})


def matched(archive, projects, clause) -> set[str]:
    with archive.session() as s:
        return {projects[i] for i in s.scalars(select(Project.id).where(clause))}


LIVE = {"public", "private", "listed"}
WRITABLE = {
    "anonymous": set(),
    "outsider": set(),
    "guest": set(),
    "amaretti_admin": set(),
    "member": LIVE,
    "admin": LIVE,
    "site_admin": LIVE | {"foreign"},
}
ADMINISTERED = {
    "anonymous": set(),
    "outsider": set(),
    "guest": set(),
    "amaretti_admin": set(),
    "member": set(),
    "admin": LIVE | {"removed"},
    "site_admin": LIVE | {"removed", "foreign"},
}


@pytest.mark.parametrize(("who", "expected"), WRITABLE.items())
def test_writable_projects(archive, projects, who: str, expected: set[str]) -> None:
    assert matched(archive, projects, access.writable_projects(principal(who))) == expected


@pytest.mark.parametrize(("who", "expected"), ADMINISTERED.items())
def test_administered_projects(archive, projects, who: str, expected: set[str]) -> None:
    assert matched(archive, projects, access.administered_projects(principal(who))) == expected


@pytest.mark.parametrize("who", WRITABLE)
def test_writable_is_readable(archive, projects, who: str) -> None:
    """Whatever one may write, one may read."""
    p = principal(who)
    writable = matched(archive, projects, access.writable_projects(p))
    assert writable <= matched(archive, projects, access.readable_projects(p))
