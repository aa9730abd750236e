"""Who is calling: the claims of a verified token, or nobody."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Principal:
    sub: int
    gids: tuple[int, ...] = ()
    scopes: dict[str, Any] = field(default_factory=dict)
    username: str | None = None
    #: the token's id (`jti`), recorded by the archive so that it can be revoked
    jti: str | None = None
    #: a download script's token (`services.downscript`): it reads these data objects (if its
    #: user still may) through the data-object and download routes, and nothing else
    datasets: frozenset[str] | None = None

    @property
    def scoped(self) -> bool:
        return self.datasets is not None

    @property
    def sub_str(self) -> str:
        """Warehouse keeps subs as strings (`admins: ["3006"]`)."""
        return str(self.sub)

    def has_scope(self, service: str, scope: str) -> bool:
        values = self.scopes.get(service) or []
        return isinstance(values, list) and scope in values

    def is_admin(self, service: str) -> bool:
        return self.has_scope(service, "admin")
