"""Mongo-style ObjectIds: 4 bytes of seconds since the epoch, then 8 random bytes, as 24 hex."""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

#: the largest integer id (user `sub`, group id) the database holds: its columns are SQL
#: `INTEGER`, 32 bits on PostgreSQL. A larger number names nothing, and must be told so (404 or
#: 400) before it reaches a statement, which PostgreSQL would refuse ("integer out of range").
MAX_INT_ID = 2**31 - 1


def int_id(value: Any) -> int | None:
    """`value` as an integer id (a JSON number or a string of ASCII digits, 0 to `MAX_INT_ID`),
    or None: `str.isdigit` also takes '²' and '١٢', which `int` refuses."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        number = int(value)
    else:
        return None
    return number if 0 <= number <= MAX_INT_ID else None


def new_object_id(when: datetime | None = None) -> str:
    seconds = int(when.timestamp()) if when is not None else int(time.time())
    return f"{seconds & 0xFFFFFFFF:08x}{os.urandom(8).hex()}"
