"""Routes under the /api/auth prefix."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
