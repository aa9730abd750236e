"""The demo world that `bl serve --demo` puts into an empty archive.

It reproduces brainlife.io's "Downloading Data-Object" page (the O3D project, its 2708 data
objects, the O3D publication and its releases, the 2019 tract-profile project of the bulk
download loop, and the finished `brainlife/app-freesurfer` tasks of group 851), plus a few
private projects so that the access rules show. Everything is deterministic: fixed ids and
dates, seeded random numbers, and file contents that are byte-identical from run to run.

Accounts (password = username, for the demo only): hayashis (sub 1), avesani (2),
frakkopesto (3), demo (4). All are ordinary users; project roles and auth groups give access.

The package: `world` (fixed ids, accounts, datatypes, projects; id and date helpers),
`content` (file contents), `objects` (data objects, storing them, the publication), `tasks`
(the tasks of group 851 and their folders) and `build` (`build_demo`, which puts them together).
"""

from brainlife.server.demo.build import DEMO_MARKER, DemoIncomplete, build_demo
from brainlife.server.demo.world import (
    DEMO_ACCOUNTS,
    GROUP_GUEST,
    GROUP_LISTED,
    GROUP_O3D,
    GROUP_PRIVATE,
    GROUP_TP,
    GUEST_PROJECT,
    LISTED_PROJECT,
    O3D_PROJECT,
    O3D_PUB,
    PRIVATE_PROJECT,
    RELEASE_1,
    RELEASE_2,
    RELEASE_REMOVED,
    T1_EXAMPLE,
    TP_PROJECT,
    WMC_EXAMPLE,
)

__all__ = [
    "DEMO_ACCOUNTS",
    "DEMO_MARKER",
    "GROUP_GUEST",
    "GROUP_LISTED",
    "GROUP_O3D",
    "GROUP_PRIVATE",
    "GROUP_TP",
    "GUEST_PROJECT",
    "LISTED_PROJECT",
    "O3D_PROJECT",
    "O3D_PUB",
    "PRIVATE_PROJECT",
    "RELEASE_1",
    "RELEASE_2",
    "RELEASE_REMOVED",
    "T1_EXAMPLE",
    "TP_PROJECT",
    "WMC_EXAMPLE",
    "DemoIncomplete",
    "build_demo",
]
