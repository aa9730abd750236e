"""Behind a reverse proxy (nginx, docs/deploy.md): the client's address, scheme and host as the
proxy saw them, from `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host`, believed
only when the connection comes from a proxy the archive trusts (`--forwarded-allow-ips`).

What depends on them: the failed-login limits count per client address (`services.auth`), the
download script names the server's URL (`services.downscript`), the web pages' cookies are
`Secure` on HTTPS (`web.session`). Anyone can send these headers, so from any other peer they are
ignored: a client reaching a replica directly cannot pose as many addresses to escape the login
limits, nor make the server write a URL of its choosing into a script.

uvicorn's own handling is turned off (`serve`): it trusts 127.0.0.1 by default, which on a
machine where users run clients locally is anyone, and it ignores `X-Forwarded-Host`.

- `X-Forwarded-For: client, proxy1, proxy2`: read from the right, each trusted address is a
  proxy of ours; the first one that is not is the client (all trusted: the leftmost). An entry
  that is not an IP address stops the walk (the address is then the connection's).
- `X-Forwarded-Proto`: `http` or `https` (the last value: the one our proxy set); anything else
  is ignored.
- `X-Forwarded-Host`: `name[:port]` or `[v6]:port` (the last value), replacing `Host`; anything
  else is ignored.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
)
_SCHEMES = {"http": {"http", "https"}, "websocket": {"ws", "wss"}}
_WEBSOCKET_SCHEME = {"http": "ws", "https": "wss"}


def parse_trusted(values: Iterable[str]) -> tuple[str, ...]:
    """The `--forwarded-allow-ips` entries (comma-separated, repeatable) checked: each an IP
    address, a network (`10.0.0.0/8`) or `*`; raises ValueError naming a bad one."""
    out: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            if item != "*":
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(
                        f"--forwarded-allow-ips: {item!r} is not an IP address, a network "
                        "(10.0.0.0/8) or *"
                    ) from None
            out.append(item)
    return tuple(out)


class ForwardedHeaders:
    """ASGI middleware: the scope's client, scheme and Host from a trusted proxy's headers."""

    def __init__(self, app: ASGIApp, trusted: Iterable[str]) -> None:
        self.app = app
        trusted = tuple(trusted)
        self.any = "*" in trusted
        self.networks = tuple(ipaddress.ip_network(t, strict=False) for t in trusted if t != "*")

    def trusts(self, address: str) -> bool:
        if self.any:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] in _SCHEMES and client and self.trusts(client[0]):
            scope = self._rewritten(scope)
        await self.app(scope, receive, send)

    def _rewritten(self, scope: Scope) -> Scope:
        found: dict[bytes, list[str]] = {}
        for name, value in scope["headers"]:
            if name in (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"):
                found.setdefault(name, []).extend(
                    v.strip() for v in value.decode("latin-1").split(",")
                )
        if not found:
            return scope
        scope = dict(scope)
        chain = found.get(b"x-forwarded-for")
        if chain:
            address = self._client(chain)
            if address is not None:
                scope["client"] = (address, 0)
        proto = (found.get(b"x-forwarded-proto") or [""])[-1].lower()
        if proto in ("http", "https"):
            scope["scheme"] = proto if scope["type"] == "http" else _WEBSOCKET_SCHEME[proto]
        host = (found.get(b"x-forwarded-host") or [""])[-1]
        if host and len(host) <= 261 and _HOST.fullmatch(host):
            headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
            headers.append((b"host", host.encode("ascii")))
            scope["headers"] = headers
        return scope

    def _client(self, chain: list[str]) -> str | None:
        address = None
        for entry in reversed(chain):
            try:
                address = str(ipaddress.ip_address(entry))
            except ValueError:
                return None
            if not self.trusts(address):
                return address
        return address
