"""The one guard for every URL and host the bot calls (shared ground: imports no capability).

A caller parses what it was given (``parse_url`` for an HTTP(S) base URL with the schemes it
accepts, ``parse_host_port`` for a socket target), then ``check``\\ s it under its own
``Policy``: the host is resolved (``getaddrinfo``; an IP literal is taken as is) and EVERY
address is classified, so a name that resolves to one private and one public address is
refused. The check runs when a target is saved and again right before each call; the caller
then connects to one of the checked addresses (never re-resolving the name), which keeps
DNS rebinding out.

Address classes: loopback (127/8, ::1), private (RFC 1918, CGNAT 100.64/10, ULA fc00::/7),
link-local (169.254/16, fe80::/10), metadata (169.254.169.254, fd00:ec2::254: cloud instance
metadata services, which hand out credentials), reserved (unspecified, multicast,
documentation, benchmarking and other special-purpose ranges) and public. Metadata and
reserved addresses are never allowed, whatever the policy; link-local only when a policy
says so (none does today). An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) and the NAT64
well-known prefix (``64:ff9b::/96``) are classified by the IPv4 address they carry.

Every refusal is a ``ServiceError`` sentence naming the field in words (``what``) and in
``field`` (the CLI adds its flag, a modal its field).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from bot.errors import ServiceError

# What every refusal raises. Delivery (which may not import bot.errors) catches it by this name.
Refused = ServiceError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]


class AddressClass(StrEnum):
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link-local"
    METADATA = "metadata"
    RESERVED = "reserved"
    PUBLIC = "public"


NEVER_ALLOWED = frozenset({AddressClass.METADATA, AddressClass.RESERVED})

_METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))
_NETS: tuple[tuple[AddressClass, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]], ...] = (
    (AddressClass.LOOPBACK, (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))),
    (AddressClass.LINK_LOCAL, (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))),
    (
        AddressClass.PRIVATE,
        (
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("172.16.0.0/12"),
            ipaddress.ip_network("192.168.0.0/16"),
            ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT (RFC 6598)
            ipaddress.ip_network("fc00::/7"),  # unique local addresses (RFC 4193)
        ),
    ),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def classify(address: IPAddress) -> AddressClass:
    """The class of one address (see the module's docstring)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return classify(address.ipv4_mapped)
        if address in _NAT64:
            return classify(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address in _METADATA:
        return AddressClass.METADATA
    for kind, networks in _NETS:
        if any(address in net for net in networks):
            return kind
    if address.is_unspecified or address.is_multicast or address.is_reserved or not address.is_global:
        return AddressClass.RESERVED
    return AddressClass.PUBLIC


@dataclass(frozen=True)
class Policy:
    """Which address classes a caller may reach. Metadata and reserved never."""

    allowed: frozenset[AddressClass]
    purpose: str  # "a probe", in a sentence: "<purpose> only calls loopback or private addresses"

    def __post_init__(self) -> None:
        if self.allowed & NEVER_ALLOWED:
            raise ValueError(f"metadata and reserved addresses can't be allowed: {sorted(self.allowed)}")


@dataclass(frozen=True)
class Checked:
    """A target whose every address passed the policy: connect to ``addresses`` only."""

    host: str  # as given (a name, or an IP literal without brackets)
    port: int
    addresses: tuple[str, ...]  # IP literals, in resolver order
    classes: frozenset[AddressClass]


@dataclass(frozen=True)
class ParsedUrl:
    scheme: str
    host: str  # lower case, IPv6 without brackets
    port: int
    path: str  # "" or "/prefix" (no trailing slash)

    @property
    def base(self) -> str:
        return f"{self.scheme}://{host_port(self.host, self.port)}{self.path}"


def host_port(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 literal."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``getaddrinfo`` gives for a TCP connection to ``host``:``port``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for _family, _type, _proto, _name, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]).split("%", 1)[0])
    return list(seen)


def _check_host_text(host: str, *, what: str, field: str) -> str:
    if not host:
        raise ServiceError(f"{what} has no host.", field=field)
    if len(host) > 253 or any(ch.isspace() or ord(ch) < 0x21 or ch in "/\\@?#%" for ch in host):
        raise ServiceError(f"{what} has a malformed host {host!r}.", field=field)
    return host.lower()


def parse_url(
    url: str, *, what: str, field: str, schemes: Iterable[str] = ("https",), default_ports: dict[str, int] | None = None
) -> ParsedUrl:
    """A base URL: one of ``schemes``, a host, a port (or the scheme's default), an optional
    path prefix; never credentials, a query or a fragment."""
    text = url.strip()
    allowed = tuple(schemes)
    ports = {"https": 443, "http": 80, **(default_ports or {})}
    if not text or any(ch.isspace() or ord(ch) < 0x20 for ch in text):
        raise ServiceError(f"{what} {url!r} is malformed: it is empty or contains whitespace.", field=field)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in allowed or not parts.netloc:
        wanted = " or ".join(f"{s}://" for s in allowed)
        raise ServiceError(f"{what} {url!r} must start with {wanted} (host and port).", field=field)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ServiceError(f"{what} must not carry a user name or password.", field=field)
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise ServiceError(f"{what} {url!r} must not have a query or a fragment.", field=field)
    try:
        port = parts.port
    except ValueError:
        raise ServiceError(f"{what} {url!r} has a bad port.", field=field) from None
    host = _check_host_text(parts.hostname or "", what=what, field=field)
    if port is None:
        port = ports[scheme]
    if not 1 <= port <= 65535:
        raise ServiceError(f"{what} {url!r} has a bad port.", field=field)
    path = parts.path.rstrip("/")
    return ParsedUrl(scheme=scheme, host=host, port=port, path=path)


def parse_host_port(text: str, *, what: str, field: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for an IPv6 literal); the port is required."""
    value = text.strip()
    if value.startswith("["):
        end = value.find("]")
        host, rest = (value[1:end], value[end + 1 :]) if end > 0 else ("", "")
        if not rest.startswith(":") or _literal(host) is None:
            raise ServiceError(f"{what} {text!r} is not HOST:PORT (an IPv6 address goes in brackets).", field=field)
        port_text = rest[1:]
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host or ":" in host:
            raise ServiceError(f"{what} {text!r} is not HOST:PORT (an IPv6 address goes in brackets).", field=field)
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ServiceError(f"{what} {text!r} has a bad port (1 to 65535).", field=field)
    return _check_host_text(host, what=what, field=field), int(port_text)


def check(
    host: str,
    port: int,
    *,
    policy: Policy,
    what: str,
    field: str,
    resolve: Resolver = system_resolver,
) -> Checked:
    """Resolve ``host`` and classify every address; ServiceError unless each one is allowed."""
    literal = _literal(host)
    if literal is not None:
        found = [str(literal)]
    else:
        try:
            found = list(resolve(host, port))
        except (OSError, UnicodeError) as exc:  # socket.gaierror, an IDNA error
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise ServiceError(f"{what}: the host {host!r} does not resolve ({reason}).", field=field) from None
        if not found:
            raise ServiceError(f"{what}: the host {host!r} resolves to no address.", field=field)
    addresses: list[str] = []
    classes: set[AddressClass] = set()
    for text in found:
        address = ipaddress.ip_address(text)
        kind = classify(address)
        if kind not in policy.allowed or kind in NEVER_ALLOWED:
            found_as = f"{address} is a" if literal is not None else f"{host!r} resolves to {address}, a"
            raise ServiceError(
                f"{what}: {found_as} {kind} address; {policy.purpose} only calls "
                f"{_allowed_words(policy.allowed)} addresses.",
                field=field,
            )
        addresses.append(str(address))
        classes.add(kind)
    return Checked(host=host, port=port, addresses=tuple(addresses), classes=frozenset(classes))


def _allowed_words(allowed: frozenset[AddressClass]) -> str:
    order = [c for c in AddressClass if c in allowed]
    if len(order) <= 1:
        return "".join(order) or "no"
    return ", ".join(order[:-1]) + " or " + order[-1]
