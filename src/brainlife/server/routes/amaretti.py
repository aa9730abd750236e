"""Routes under the /api/amaretti prefix."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
