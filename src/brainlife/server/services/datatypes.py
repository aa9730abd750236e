"""Listing datatypes (`GET /api/warehouse/datatype`, public)."""

from __future__ import annotations

from sqlalchemy import true
from sqlalchemy.orm import Session

from brainlife.server.models import Datatype
from brainlife.server.query import ListParams
from brainlife.server.services.listing import Listing, run_listing
from brainlife.server.specs import DATATYPES


def list_datatypes(*, session: Session, params: ListParams) -> Listing[Datatype]:
    return run_listing(session, Datatype, DATATYPES, true(), params)
