"""Listing projects (`GET /api/warehouse/project`)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from brainlife.server.access import listable_projects
from brainlife.server.models import Project
from brainlife.server.principal import Principal
from brainlife.server.query import ListParams
from brainlife.server.services.listing import Listing, run_listing
from brainlife.server.specs import PROJECTS


def list_projects(
    *, session: Session, principal: Principal | None, params: ListParams
) -> Listing[Project]:
    """Projects the caller may list: public ones, their own (admin/member/guest) and private
    `listed` ones; anonymous callers see public projects only. Removed projects are not hidden
    (clients send `removed: false`). `count` counts only what the caller may list."""
    return run_listing(session, Project, PROJECTS, listable_projects(principal), params)
