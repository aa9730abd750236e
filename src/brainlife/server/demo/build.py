"""`build_demo`: fill an empty archive with the demo world (accounts, datatypes, projects, apps
and resources, data objects, the publication and the tasks), in a fixed order so that the
seeded random numbers, and so every id and every byte, are the same on every run."""

from __future__ import annotations

import random
import shutil
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from brainlife.server.archive import Archive
from brainlife.server.catalogue import datatype_extra
from brainlife.server.demo.apps import add_apps
from brainlife.server.demo.objects import add_publication, o3d_objects, other_objects, store_objects
from brainlife.server.demo.projectfiles import add_project_files
from brainlife.server.demo.tasks import add_tasks
from brainlife.server.demo.world import (
    DATATYPES,
    O3D_PROJECT,
    PROJECTS,
    SEED,
    SUB,
    TP_PROJECT,
    USERS,
    oid_time,
    utc,
)
from brainlife.server.models import Datatype, Group, GroupMember, Project, ProjectRole, User

DEMO_MARKER = "demo-complete"


class DemoIncomplete(RuntimeError):
    """The data directory holds a demo whose build did not finish."""


def build_demo(session: Session, archive: Archive) -> bool:
    """Fill an empty archive (no projects) with the demo world and commit. Return False and
    change nothing when the archive already holds projects.

    A marker file written after the final commit tells a complete demo from one whose build was
    interrupted (objects are committed as they are stored): the latter raises DemoIncomplete
    rather than serving half a world."""
    marker = archive.settings.data_dir / DEMO_MARKER
    if session.scalar(select(func.count()).select_from(Project)):
        if marker.exists() or session.get(Project, O3D_PROJECT) is None:
            return False
        raise DemoIncomplete(
            f"A previous demo build in {archive.settings.data_dir} was interrupted. Remove that "
            "folder (it holds only the unfinished demo) and run `bl serve --demo` again."
        )
    rng = random.Random(SEED)
    _accounts(session)
    for dtid, name, desc, files, tags, validator in DATATYPES:
        if session.get(Datatype, dtid) is not None:  # the archive's catalogue has it
            continue
        extra = datatype_extra(files, tags, validator)
        session.add(
            Datatype(id=dtid, name=name, desc=desc, create_date=oid_time(dtid), extra=extra)
        )
    _projects(session)
    session.flush()
    add_apps(session)
    objects = o3d_objects(rng) + other_objects(rng)
    if len({o.id for o in objects}) != len(objects):
        raise AssertionError("demo object ids collide")
    store_objects(session, archive, objects)
    add_publication(session)
    add_tasks(
        session,
        archive,
        rng,
        {
            o.subject: o.id
            for o in objects
            if o.project == O3D_PROJECT and o.datatype == "neuro/anat/t1w"
        },
        profile_id=next(
            o.id for o in objects if o.project == TP_PROJECT and o.datatype == "neuro/tractprofile"
        ),
    )
    add_project_files(session, archive)
    session.commit()
    _tasks_to_store(archive)
    marker.write_text("the demo world was built completely\n")
    return True


def _tasks_to_store(archive: Archive) -> None:
    """With an object store (`--store s3://…`) the task folders just written go to the store
    (`storetaskfiles`), as every task output of such an archive."""
    from brainlife.server.storetaskfiles import StoreTaskFiles

    files = archive.task_files
    if not isinstance(files, StoreTaskFiles):
        return
    for folder in sorted(archive.settings.tasks_dir.iterdir()):
        if folder.is_dir() and not folder.name.startswith("."):
            files.import_folder(folder.name, folder)
            shutil.rmtree(folder)


def _accounts(session: Session) -> None:
    from brainlife.server.services.auth import create_user

    for username, sub, fullname in USERS:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            free = session.get(User, sub) is None
            user = create_user(
                session,
                username=username,
                password=username,
                email=f"{username}@demo.invalid",
                fullname=fullname,
                scopes={},
                sub=sub if free else None,
            )
            user.create_date = utc(2017, 3, 1) + timedelta(days=sub)
        SUB[username] = str(user.sub)
    session.flush()


def _projects(session: Session) -> None:
    for pid, gid, name, desc, access, listed, admins, members, guests in PROJECTS:
        when = oid_time(pid)
        if session.get(Group, gid) is None:
            session.add(Group(id=gid, name=name, desc=desc))
        session.flush()
        for role, users in (("admin", admins), ("member", members)):
            for username in users:
                session.add(GroupMember(group_id=gid, sub=int(SUB[username]), role=role))
        roles = [
            ProjectRole(role=role, sub=SUB[username], pos=pos)
            for role, users in (("admins", admins), ("members", members), ("guests", guests))
            for pos, username in enumerate(users)
        ]
        extra = {
            "avatar": "",
            "agreements": [],
            "readme": "",
            "limitResource": False,
            "noPublicResource": False,
            "publishParticipantsInfo": False,
            "relatedPapers": [],
        }
        session.add(
            Project(
                id=pid,
                group_id=gid,
                user_id=SUB[admins[0]],
                name=name,
                desc=desc,
                access=access,
                listed=listed,
                create_date=when,
                update_date=when,
                extra=extra,
                roles=roles,
            )
        )
