"""Webhook targets, signatures and retry schedule (pure parts; delivery lives in the worker).

Signature: header ``Diarq-Signature: t=<unix>,v1=<hex hmac-sha256>`` over
``f"{t}.{body}"`` with the API key's webhook secret, as Stripe-style receivers
expect; the timestamp lets receivers refuse replays.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from urllib.parse import urlsplit

from diarq.shared.errors import InvalidOptions

SIGNATURE_HEADER = "Diarq-Signature"
# ~1h10m in total: 10 s, 30 s, 1 min, 2 min, 5 min, 10 min, 20 min, 30 min
RETRY_DELAYS_S = (10, 30, 60, 120, 300, 600, 1200, 1800)


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, tolerance_s: int = 300) -> bool:
    """Check a signature header (what a receiver does; used by tests and docs)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - t) > tolerance_s:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def _is_private(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    return not ip.is_global or ip.is_multicast


def validate_webhook_url(url: str, *, allow_private: bool = False, resolve: bool = True) -> str:
    """Refuse targets that are not http(s) or that point into private networks.

    Every address the host resolves to is checked, so a public name that resolves
    to 127.0.0.1 or 10.x is refused too (SSRF). The worker checks again before
    each delivery because DNS answers can change.
    """
    if len(url) > 2000:
        raise InvalidOptions("webhook_url: longer than 2000 characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidOptions("webhook_url: use an http:// or https:// URL with a host name")
    if parts.username or parts.password:
        raise InvalidOptions("webhook_url: credentials in the URL are not allowed")
    if allow_private or not resolve:
        return url
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise InvalidOptions(f"webhook_url: host {parts.hostname!r} does not resolve") from None
    addrs = {info[4][0] for info in infos}
    if any(_is_private(a) for a in addrs):
        raise InvalidOptions(
            "webhook_url: the host resolves to a private or loopback address; "
            "use a public address (operators can allow private targets with "
            "DIARQ_WEBHOOK_ALLOW_PRIVATE=true)"
        )
    return url
