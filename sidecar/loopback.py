"""Whether a host name is this machine: the one answer for every place that asks.

Plain-http base URLs are allowed only to loopback (providers), the gateway binds to it
unless told otherwise, and a shell's gateway URLs are recognised by it (sources).
"""

from __future__ import annotations

__all__ = ["is_loopback"]


def is_loopback(host: str) -> bool:
    """``localhost`` (and names under it), 127.0.0.0/8 and ``::1``, brackets or not."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    import ipaddress  # only when asked: sources.py is read at every start-up

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
