"""Reading task data given as URLs (texts, images), for the backend and the worker alike, without SSRF.

Task data is imported by users, and ``/setup``'s ``hostname`` is chosen by
whoever calls it, so a URL in a task may point anywhere: cloud metadata,
Redis, an internal admin page.  Label Studio itself blocks such addresses in
its own outgoing calls; this module is at least as careful:

* **allow-list**: Label Studio's own host, plus ``AL_FETCH_ALLOW_HOSTS``
  (``*`` = any host with public addresses);
* **addresses checked after DNS**, and the connection goes to the address
  that was checked (the host name stays in ``Host`` and TLS SNI), so a DNS
  answer that changes between check and connect (rebinding) cannot redirect
  it.  Loopback, private, link-local and other non-global addresses are
  refused unless the host was named by the operator (``LABEL_STUDIO_URL`` or
  ``AL_FETCH_ALLOW_HOSTS``), never for a host that only ``/setup`` named;
* **no redirects**, a **byte cap** counted while streaming, and a **total
  deadline** for connect, headers and body together (a server that drips a
  byte every few seconds is cut off at the deadline plus one read timeout,
  a quarter of it);
* **one error for every failure**: refused, unreachable, HTTP error, too big
  or too slow all give the same ``TaskDataError`` message, so the answer
  (and the task's skip score) does not tell a caller whether a fetch worked.
  The real reason is logged at DEBUG for the operator.

Credentials go only to Label Studio's own origin (see ``ls_client``).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from typing import Callable
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from backend.labelstudio.client import Credentials, LabelStudioClient, LabelStudioError, origin, resolve_credentials
from backend.labelstudio.task_data import Fetch, TaskDataError
from backend.settings import Settings

log = logging.getLogger(__name__)

UNREADABLE = "the task data given as a URL could not be read"
BREAKER = 5  # failures in a row on one host before a project's fetcher stops trying it


class _Refused(Exception):
    """Internal: why a fetch did not happen or failed (logged at DEBUG, never answered)."""


def _hosts(value: str) -> tuple[frozenset[str], bool]:
    names = {h.strip().lower().strip("[]") for h in value.split(",") if h.strip()}
    return frozenset(names - {"*"}), "*" in names


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class SafeFetcher:
    """One per process: a shared HTTP client and the policy from the settings.

    ``fetch(url, creds)`` reads one text (``binary=True``: the bytes, e.g. an
    image); ``for_project`` makes the ``Fetch`` callable that
    ``task_data.control_content`` takes.
    """

    def __init__(self, settings: Settings, resolve: Callable[[str, int], list] = socket.getaddrinfo) -> None:
        self.settings = settings
        self.allowed, self.any_public = _hosts(settings.fetch_allow_hosts)
        env_host = urlsplit(settings.label_studio_url.strip()).hostname if settings.label_studio_url else None
        # Hosts the operator named may be on any address (Label Studio is often on localhost).
        self.trusted = self.allowed | ({env_host.lower()} if env_host else set())
        self._resolve = resolve
        self._http = httpx.Client(follow_redirects=False, trust_env=False)
        self._clients: dict[tuple[str, str], LabelStudioClient] = {}
        self._lock = threading.Lock()

    # -- policy -----------------------------------------------------------------
    def _addresses(self, host: str, port: int, creds: Credentials | None) -> list[str]:
        """The checked addresses to connect to, or ``_Refused``."""
        ls_host = (urlsplit(creds.url).hostname or "").lower() if creds else ""
        trusted = host in self.trusted
        if not (trusted or host == ls_host or self.any_public):
            raise _Refused(f"host {host} is not Label Studio's and not in AL_FETCH_ALLOW_HOSTS")
        try:
            infos = self._resolve(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise _Refused(f"cannot resolve {host}: {type(exc).__name__}") from None
        ips = []
        for info in infos:
            try:
                ips.append(ipaddress.ip_address(info[4][0].split("%", 1)[0]))
            except ValueError:
                continue
        if not ips:
            raise _Refused(f"{host} has no address")
        if not trusted and not all(_is_public(ip) for ip in ips):
            raise _Refused(f"{host} resolves to a non-public address; name it in AL_FETCH_ALLOW_HOSTS to allow it")
        return [str(ip) for ip in ips]

    def _auth(self, url: str, creds: Credentials | None) -> dict[str, str]:
        if creds is None or not creds.key or origin(url) != origin(creds.url):
            return {}
        with self._lock:
            client = self._clients.get((creds.url, creds.key))
            if client is None:
                client = self._clients[(creds.url, creds.key)] = LabelStudioClient(
                    creds.url, creds.key, timeout=self.settings.fetch_timeout)
        return client.auth_header()

    # -- the fetch --------------------------------------------------------------
    def fetch(self, link: str, creds: Credentials | None, *, binary: bool = False) -> str | bytes:
        """The text (or with ``binary`` the bytes) at ``link``; relative links are on Label Studio.

        ``TaskDataError`` on any failure.
        """
        try:
            body, encoding = self._fetch(link, creds)
            return body if binary else body.decode(encoding or "utf-8", errors="replace")
        except (_Refused, httpx.HTTPError, LabelStudioError, OSError, ValueError) as exc:
            parts = urlsplit(link) if isinstance(link, str) else None
            where = f"{parts.hostname or 'label-studio'}{parts.path[:100]}" if parts else "?"
            log.debug("task data URL %s not read: %s", where, exc if isinstance(exc, _Refused) else type(exc).__name__)
            raise TaskDataError(UNREADABLE) from None

    def _fetch(self, link: str, creds: Credentials | None) -> tuple[bytes, str | None]:
        s = self.settings
        deadline = time.monotonic() + s.fetch_timeout
        if not urlsplit(link).scheme:
            if creds is None:
                raise _Refused("a relative URL and no Label Studio URL is known (set LABEL_STUDIO_URL)")
            link = urljoin(creds.url.rstrip("/") + "/", link)
        parts = urlsplit(link)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Refused(f"scheme {parts.scheme!r} is not http(s)")
        host = parts.hostname.lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        ip = self._addresses(host, port, creds)[0]
        netloc = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        # identity: a compressed body would be inflated past the cap in one chunk.
        headers = {"Host": parts.netloc.rpartition("@")[2], "Accept-Encoding": "identity", **self._auth(link, creds)}
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        remaining = deadline - time.monotonic()
        timeout = httpx.Timeout(remaining, read=max(0.05, min(remaining, s.fetch_timeout / 4)))
        with self._http.stream("GET", pinned, headers=headers, extensions=extensions, timeout=timeout) as resp:
            if resp.status_code != 200:
                raise _Refused(f"HTTP {resp.status_code}")
            length = resp.headers.get("content-length", "")
            if length.isdigit() and int(length) > s.fetch_max_bytes:
                raise _Refused(f"Content-Length {length} over AL_FETCH_MAX_BYTES")
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > s.fetch_max_bytes:
                    raise _Refused("body over AL_FETCH_MAX_BYTES")
                if time.monotonic() > deadline:
                    raise _Refused("over the AL_FETCH_TIMEOUT deadline")
            return bytes(body), resp.charset_encoding

    def for_project(self, config: Callable[[], dict]) -> Fetch:
        """A ``Fetch`` for one project: its credentials are looked up on the first URL only.

        ``config`` returns the project's stored ``/setup`` fields; tasks with
        inline text never call it.  After ``BREAKER`` failures in a row on one
        host, its other URLs are skipped without a try: a pool of texts on a
        dead host costs a few deadlines per refresh, not one per task.
        """
        creds: list[Credentials | None] = []
        failures: dict[str, int] = {}

        def fetch(link: str, binary: bool = False) -> str | bytes:
            if not creds:
                creds.append(resolve_credentials(self.settings, config()))
            host = urlsplit(link).hostname or ""
            if failures.get(host, 0) >= BREAKER:
                raise TaskDataError(UNREADABLE)
            try:
                body = self.fetch(link, creds[0], binary=binary)
            except TaskDataError:
                failures[host] = failures.get(host, 0) + 1
                raise
            failures[host] = 0
            return body

        return fetch

    def close(self) -> None:
        self._http.close()
        for client in self._clients.values():
            client.close()


_shared: dict[int, SafeFetcher] = {}


def shared_fetcher(settings: Settings) -> SafeFetcher:
    """The process's fetcher for these settings (one connection pool per process)."""
    fetcher = _shared.get(id(settings))
    if fetcher is None or fetcher.settings is not settings:
        fetcher = _shared[id(settings)] = SafeFetcher(settings)
    return fetcher
