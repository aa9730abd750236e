"""Routes under the /api/warehouse prefix."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
