"""Fetching a URL on the target with the standard library (urllib: http and https,
with a proxy from the target's environment as urllib reads it; ``file:`` URLs are
read through the System), and saying plainly why a fetch failed: an HTTP status,
a timeout, a TLS error, a name that does not resolve. Python 3.8, stdlib only.
"""

from __future__ import annotations

from typing import Any, Dict, NamedTuple, Optional
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import ResourceError


class Fetched(NamedTuple):
    """What a fetch brought: None data on 304 Not Modified."""

    data: Optional[bytes]
    etag: Optional[str]
    last_modified: Optional[str]


def shown(url: str) -> str:
    """The URL as messages show it: a password in it is replaced by '***'."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = "%s:***@%s" % (parts.username or "", parts.hostname or "")
    if parts.port:
        netloc += ":%d" % parts.port
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def fetch(system: Any, url: str, headers: Dict[str, str], timeout: float,
          etag: Optional[str] = None, last_modified: Optional[str] = None) -> Fetched:
    """The body of ``url``, or a ResourceError that says which failure it was."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        data = system.read_bytes(unquote(parts.path))
        if data is None:
            raise ResourceError("%s: no such file on the target" % shown(url))
        return Fetched(data, None, None)
    import socket
    import ssl
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers=dict(headers))
    if etag:
        request.add_header("If-None-Match", etag)
    if last_modified:
        request.add_header("If-Modified-Since", last_modified)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            data = response.read()
            return Fetched(data, response.headers.get("ETag"),
                           response.headers.get("Last-Modified"))
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Fetched(None, etag, last_modified)
        raise ResourceError("%s answered HTTP %d %s" % (shown(url), exc.code, exc.reason),
                            hint="check the URL" if exc.code == 404 else None) from None
    except urllib.error.URLError as exc:
        raise _explain(url, exc.reason, timeout) from None
    except (socket.timeout, ssl.SSLError, OSError) as exc:
        raise _explain(url, exc, timeout) from None


def _explain(url: str, reason: Any, timeout: float) -> ResourceError:
    import socket
    import ssl

    if isinstance(reason, ssl.SSLCertVerificationError):
        return ResourceError("TLS error from %s: the certificate was not verified (%s)"
                             % (shown(url), reason.verify_message or reason),
                             hint="fix the server's certificate, or install its CA on the "
                             "target")
    if isinstance(reason, ssl.SSLError):
        return ResourceError("TLS error from %s: %s" % (shown(url), reason.reason or reason))
    if isinstance(reason, socket.timeout) or "timed out" in str(reason):
        return ResourceError("%s timed out after %gs" % (shown(url), timeout))
    if isinstance(reason, socket.gaierror):
        return ResourceError("%s: the name %s does not resolve (%s)"
                             % (shown(url), urlsplit(url).hostname, reason.strerror))
    if isinstance(reason, OSError) and reason.strerror:
        return ResourceError("%s: %s" % (shown(url), reason.strerror))
    return ResourceError("%s: %s" % (shown(url), reason))
