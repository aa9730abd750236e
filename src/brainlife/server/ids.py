"""Mongo-style ObjectIds: 4 bytes of seconds since the epoch, then 8 random bytes, as 24 hex."""

from __future__ import annotations

import os
import time
from datetime import datetime


def new_object_id(when: datetime | None = None) -> str:
    seconds = int(when.timestamp()) if when is not None else int(time.time())
    return f"{seconds & 0xFFFFFFFF:08x}{os.urandom(8).hex()}"
