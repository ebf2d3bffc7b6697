"""Where a webhook may point. Checked when an endpoint is created or changed and again
before every delivery, on the addresses the name resolves to at that moment, and the
request then goes to the checked address (a DNS answer that changes between the check
and the connection, "rebinding", cannot steer it elsewhere)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from service.core.problems import Unprocessable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services; most are link-local anyway, these are not all.
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("fd00:ec2::254"),
}


class UnsafeWebhookUrl(Unprocessable):
    slug, title = "unsafe-webhook-url", "Webhook URL not allowed"


@dataclass(frozen=True)
class Policy:
    allow_http: bool = False
    allow_private: bool = False


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    address: str  # the checked IP the request connects to

    def pinned_url(self) -> str:
        """The URL with its host replaced by the checked address."""
        parts = urlsplit(self.url)
        ip = ipaddress.ip_address(self.address)
        literal = f"[{ip}]" if ip.version == 6 else str(ip)
        netloc = literal if parts.port is None else f"{literal}:{parts.port}"
        return parts._replace(netloc=netloc).geturl()

    def host_header(self) -> str:
        parts = urlsplit(self.url)
        return parts.netloc


def check_url(url: str, policy: Policy) -> str:
    """The URL's host, if its form is acceptable (scheme, no credentials)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeWebhookUrl(f"not a valid URL: {exc}") from exc
    allowed = ("https", "http") if policy.allow_http else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeWebhookUrl(
            "webhook URLs must use https://"
            + ("" if policy.allow_http else " (FACEPRINT_WEBHOOK_ALLOW_HTTP=true allows http)")
        )
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeWebhookUrl("webhook URLs may not carry credentials")
    if not parts.hostname:
        raise UnsafeWebhookUrl("the webhook URL has no host")
    if port == 0:
        raise UnsafeWebhookUrl("the webhook URL has an invalid port")
    if parts.fragment:
        raise UnsafeWebhookUrl("webhook URLs may not have a #fragment")
    return parts.hostname


def _forbidden(ip: IPAddress) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _forbidden(ip.ipv4_mapped)
    if ip in _METADATA:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private or ip.is_reserved or ip.is_multicast or ip.is_unspecified:
        return "a private or reserved address"
    if ip in ipaddress.ip_network("100.64.0.0/10"):  # carrier-grade NAT
        return "a private or reserved address"
    return None


def resolve(url: str, policy: Policy) -> Target:
    """The URL checked, its host resolved and every address it resolves to checked.
    Raises :class:`UnsafeWebhookUrl`."""
    host = check_url(url, policy)
    port = urlsplit(url).port or (443 if url.startswith("https") else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeWebhookUrl(f"the webhook host {host!r} does not resolve") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise UnsafeWebhookUrl(f"the webhook host {host!r} does not resolve")
    if not policy.allow_private:
        for ip in addresses:
            why = _forbidden(ip)
            if why is not None:
                raise UnsafeWebhookUrl(
                    f"the webhook host {host!r} resolves to {why} ({ip}); set "
                    "FACEPRINT_WEBHOOK_ALLOW_PRIVATE=true to allow it"
                )
    return Target(url=url, host=host, address=str(addresses[0]))
