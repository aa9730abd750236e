"""The fixed tables of the demo world: ids, accounts, datatypes and projects, and the helpers
that make deterministic dates and Mongo-like ids."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from brainlife.server.catalogue import DEMO_DATATYPES

DEMO_ACCOUNTS: list[str] = ["hayashis", "avesani", "frakkopesto", "demo"]

# -- fixed ids of the world ----------------------------------------------------------------

O3D_PROJECT = "5a022fc99c0d250055709e9c"
TP_PROJECT = "5b0dad8041711001e958b519"
PRIVATE_PROJECT = "5c3f8a1e7d4b2c0031a6e210"
LISTED_PROJECT = "5c3f8b027d4b2c0031a6e214"
GUEST_PROJECT = "5c3f8b9a7d4b2c0031a6e219"
WMC_EXAMPLE = "5bb5713a12512a003f32e9b6"
T1_EXAMPLE = "5a050ad5d76a2a002737e572"
O3D_PUB = "5bab9918a918ae002702418f"
RELEASE_1 = "5bab993aa918ae0027024192"
RELEASE_REMOVED = "5bb2437c19fdb40027307f7b"
RELEASE_2 = "5c0ff604391ed50032b634d1"
GROUP_O3D, GROUP_TP, GROUP_PRIVATE, GROUP_LISTED, GROUP_GUEST = 53, 851, 902, 903, 904

O3D_COUNT = 2708  # data objects of O3D that are not removed
O3D_SUBJECTS = [f"{n:04d}" for n in range(1, 22)]
ALGORITHMS = ["dt_stream", "sd_stream", "sd_prob"]
TP_SUBJECTS = ["100206", "100307", "100408", "101107", "101309", "101915"]
TP_TAGSETS = [["afq", "run1"], ["afq", "run2"], ["life", "run1"]]
FREESURFER_SUBJECTS = O3D_SUBJECTS[:6]
SEED = 20181004

USERS = [  # username, sub, fullname
    ("hayashis", 1, "Soichi Hayashi"),
    ("avesani", 2, "Paolo Avesani"),
    ("frakkopesto", 3, "Franco Pestilli"),
    ("demo", 4, "Demo User"),
]
#: username -> sub; build_demo updates it in place with the subs the accounts really have
SUB = {name: str(sub) for name, sub, _ in USERS}


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def oid_time(oid: str) -> datetime:
    return datetime.fromtimestamp(int(oid[:8], 16), UTC)


class IdMaker:
    """Mongo-like ObjectIds: 4 bytes of seconds, a fixed 5-byte "process" part and a 3-byte
    counter that grows with every id (so ids made later sort later)."""

    def __init__(self, process: str, counter: int, rng: random.Random) -> None:
        self.process, self.counter, self.rng = process, counter, rng

    def at(self, when: datetime) -> str:
        self.counter = (self.counter + self.rng.randint(1, 9)) & 0xFFFFFF
        return f"{int(when.timestamp()) & 0xFFFFFFFF:08x}{self.process}{self.counter:06x}"


# -- datatypes -----------------------------------------------------------------------------

#: the demo's datatypes: the archive's catalogue has them (and more) from the first start
DATATYPES = DEMO_DATATYPES
DT = {name: dtid for dtid, name, *_ in DATATYPES}

# -- projects ------------------------------------------------------------------------------

PROJECTS: list[tuple[str, int, str, str, str, bool, list[str], list[str], list[str]]] = [
    # id, group, name, desc, access, listed, admins, members, guests
    (
        O3D_PROJECT,
        GROUP_O3D,
        "O3D",
        "O3D (Open Diffusion Data and Derivative) is a reference repository for precision "
        "connectome mapping, white matter tracts analysis and algorithmic development.",
        "public",
        False,
        ["hayashis", "avesani", "frakkopesto"],
        ["hayashis", "avesani", "frakkopesto"],
        [],
    ),
    (
        TP_PROJECT,
        GROUP_TP,
        "2019 tractprofiles",
        "Tract profiles (FA, MD, RD and AD along 20 major tracts) of six subjects, computed in "
        "2019. Also runs the FreeSurfer processes of the task-download example.",
        "public",
        False,
        ["hayashis"],
        ["hayashis", "demo"],
        [],
    ),
    (
        PRIVATE_PROJECT,
        GROUP_PRIVATE,
        "Private demo",
        "A private project: only its admins and members can see it or read its data.",
        "private",
        False,
        ["avesani"],
        ["avesani"],
        [],
    ),
    (
        LISTED_PROJECT,
        GROUP_LISTED,
        "Listed private study",
        "A private project that is listed: every user sees it, only members read its data.",
        "private",
        True,
        ["frakkopesto"],
        ["frakkopesto", "avesani"],
        [],
    ),
    (
        GUEST_PROJECT,
        GROUP_GUEST,
        "Guest access study",
        "A private project where the demo user is a guest (read-only access to the data).",
        "private",
        False,
        ["hayashis"],
        ["hayashis"],
        ["demo"],
    ),
]
