"""One connection to a qBittorrent instance: logging in, the back-off after a refusal, sending.

A :class:`Connection` (what a :class:`~magnetd.delivery.qbittorrent.Client` is built on)
sends each request over a ``requests.Session``. It logs in when it has to, logs in
again once when a session has expired, and after a refused login waits out a
back-off (10 min, doubling up to 24 h) before it sends the password again, so that
it never gets its address banned. With an API key (qBittorrent 5.2+) it sends the
key instead and never logs in. Slow reads go on a side session of their own.
Errors that make the whole instance unusable are raised as :class:`InstanceError`
with a short ``status`` code.

This module logs nothing: its callers do. No text it produces contains the
password or a cookie value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import requests

from magnetd.delivery.transport import Endpoint, describe
from magnetd.model import InstanceStatus

BACKOFF_FIRST = 600.0
"""Seconds to wait after the first refused login: qBittorrent bans an address after 5 failures
in a row (for an hour, by default), and a ban locks out the user's own browser too."""
BACKOFF_MAX = 24 * 3600.0
"""The longest wait between two login attempts (the wait doubles from ``BACKOFF_FIRST``)."""
KEY_BACKOFF_FIRST = 60.0
"""Seconds to wait after qBittorrent refused the API key: it bans no address for a wrong key
(5.3.0: 403 seven times in a row, no ban), but a refused key is never asked again at once."""

_BODY_EXCERPT = 200  # characters of an unexpected answer kept in a detail: enough to recognise it


class InstanceError(Exception):
    """The whole instance is unusable right now.

    ``status`` is one of ``AUTH_FAILED``, ``BANNED``, ``TIMEOUT``,
    ``UNREACHABLE``, ``TLS_ERROR``, ``HTTP_<code>`` or ``UNKNOWN``; ``detail``
    says it in a few words. After a refused login, ``reason`` is what qBittorrent
    said (``detail`` without the wait) and ``retry_in`` the seconds until the next
    login attempt. ``raw`` is the underlying error's own text, for debug logs.
    """

    def __init__(
        self,
        status: str,
        detail: str,
        *,
        reason: str | None = None,
        retry_in: float | None = None,
        raw: str | None = None,
    ) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.reason = detail if reason is None else reason
        self.retry_in = retry_in
        self.raw = raw

    def masked(self, hide: Callable[[str], str]) -> InstanceError:
        """This error with ``hide`` applied to each of its texts."""
        raw = None if self.raw is None else hide(self.raw)
        return InstanceError(
            self.status, hide(self.detail), reason=hide(self.reason), retry_in=self.retry_in, raw=raw
        )


def api_base(url: str) -> str:
    """The ``.../api/v2/`` address for a WebUI ``url`` (with or without a path prefix)."""
    return url.rstrip("/") + "/api/v2/"


def excerpt(response: requests.Response) -> str:
    """The start of a response body, on one line."""
    return " ".join(response.text.split())[:_BODY_EXCERPT]


def _session(url: str, api_key: str, loopback: bool, verify: bool | str) -> requests.Session:
    """A session to ``url`` sending magnetd's User-Agent and, with an API key, its Bearer token.

    To an instance on this machine it asks for answers uncompressed: a verification
    lists about 1 KB per torrent, and gzip costs qBittorrent about a fifth of such a
    call, on the thread every other request waits for, to save bytes that never
    leave the machine.

    What requests would look up in the environment before every request (a proxy
    from ``HTTP_PROXY``/``HTTPS_PROXY`` unless ``NO_PROXY`` names the host, the CA
    bundle of ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` for ``verify=True``, a login
    from ``.netrc``) is looked up once, here, by requests' own functions: every
    request of the session goes to the same address, and the look-up cost ~0.3 ms of
    CPU per request (it goes through every environment variable). The session
    keeps the ``verify`` that results, for every request it sends.
    """
    session = requests.Session()
    session.headers["User-Agent"] = "magnetd"
    if loopback:
        session.headers["Accept-Encoding"] = "identity"
    if api_key:  # qBittorrent 5.2+: sent on every request, no login
        session.headers["Authorization"] = f"Bearer {api_key}"
    found = session.merge_environment_settings(url, {}, None, verify, None)
    session.proxies.update(found["proxies"])
    session.verify = found["verify"]
    netrc = requests.utils.get_netrc_auth(url)
    if netrc is not None:
        session.auth = netrc
    session.trust_env = False
    return session


class Connection:
    """The sessions with one qBittorrent instance and their login.

    A :class:`~magnetd.delivery.qbittorrent.Client` is one. A request is sent with
    ``_lock`` held; a slow read on the side session holds ``_side_lock``, and
    ``_lock`` only to log in and to read its answer.
    """

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        verify: bool | str = True,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        api_key: str = "",
    ) -> None:
        self.url = url
        self.username = username
        self._password = password
        self._api_key = api_key  # qBittorrent 5.2+: sent as a Bearer token on every request, no login
        self._base = api_base(url)
        self._endpoint = Endpoint.of(url)
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        loopback = self._endpoint.loopback
        self._session = _session(self._base, api_key, loopback, verify)
        self._side_lock = threading.Lock()  # slow reads (sync/maindata): never behind or ahead of a send
        self._side = _session(self._base, api_key, loopback, verify)  # own connection; _session's cookies
        self._app_version = ""  # app/version, asked once per session
        self._logged_in = False
        self._logins = 0  # successful logins so far: a slow read logs in again only if nobody else did
        self._failures = 0
        self._blocked_until: float | None = None
        self._block_status: str = InstanceStatus.AUTH_FAILED
        self._block_detail = ""

    @property
    def login_blocked_until(self) -> float | None:
        """When (on the client's clock) a login may be tried again, or None if now."""
        until = self._blocked_until
        if until is None or self._clock() >= until:
            return None
        return until

    # public calls: each holds the lock for its whole duration

    def login(self) -> None:
        """Log in now, unless a back-off after a refused login is still running."""
        with self._lock:
            self._login()

    def close(self) -> None:
        """Drop the session and its connections."""
        with self._lock:
            self._logged_in = False
            self._session.close()
        with self._side_lock:
            self._side.close()

    # internals: called with the lock held

    def _fail(self, error: InstanceError) -> InstanceError:
        """``error`` with its texts stripped of the password and the API key."""
        return error.masked(self._hide)

    def _hide(self, text: str) -> str:
        for secret in (self._password, self._api_key):
            text = text.replace(secret, "***") if secret else text
        return text

    def _send(
        self, method: str, path: str, session: requests.Session | None = None, **kwargs: Any
    ) -> requests.Response:
        """One HTTP request (on ``session``, or the main one), requests' exceptions as InstanceError."""
        url = self._base + path
        try:
            response = (session or self._session).request(
                method,
                url,
                timeout=(self._timeout, self._timeout),
                allow_redirects=False,
                stream=True,
                **kwargs,
            )
            # The body in one read, kept where requests keeps a body it has read (its errors
            # still become requests' own on the way): read by requests, a body goes 10 KB at
            # a time, ~100 steps through urllib3 for the ~1 MB of a verification's answer
            # (1.7-2.2 ms of the courier's CPU against 0.7).
            try:
                response._content = b"".join(response.iter_content(None))
            finally:
                response.close()  # read: the connection goes back to the pool; cut short: dropped
            return response
        except requests.exceptions.RequestException as exc:
            status, detail = describe(exc, self._endpoint, self._timeout)
            raise self._fail(InstanceError(status, detail, raw=str(exc))) from None

    def _unexpected(self, response: requests.Response, path: str) -> InstanceError:
        code = response.status_code
        return self._fail(
            InstanceError(InstanceStatus.http(code), f"{path} answered {code}: {excerpt(response)}")
        )

    def _call(
        self, method: str, path: str, accept: Collection[int] = (200,), **kwargs: Any
    ) -> requests.Response:
        """A request that needs a session: log in first if needed, and again once on 403."""
        if self._api_key:
            return self._keyed_call(method, path, accept, **kwargs)
        if not self._logged_in:
            self._login()
        response = self._send(method, path, **kwargs)
        if response.status_code == 403:
            self._logged_in = False
            self._login()
            response = self._send(method, path, **kwargs)
        if response.status_code in accept:
            return response
        if response.status_code == 403:
            self._logged_in = False
        raise self._unexpected(response, path)

    def _keyed_call(
        self, method: str, path: str, accept: Collection[int], **kwargs: Any
    ) -> requests.Response:
        """A request with the API key: no login; a 403 means the key is wrong (never asked again at once)."""
        self._check_backoff()
        return self._keyed_answer(self._send(method, path, **kwargs), path, accept)

    def _keyed_answer(
        self, response: requests.Response, path: str, accept: Collection[int]
    ) -> requests.Response:
        """Read the answer to a request with the API key."""
        if response.status_code in accept:
            self._failures = 0
            return response
        if response.status_code == 403:
            self._app_version = ""
            detail = (
                "qBittorrent refused the API key (403): a wrong or rotated key, or a qBittorrent before 5.2"
            )
            raise self._refused(InstanceStatus.AUTH_FAILED, detail)
        raise self._unexpected(response, path)

    def _side_call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A slow read on the side session: the lock is held to log in and copy the session
        cookie, or to read the answer, never while qBittorrent works on the request."""
        with self._lock:
            logins = self._side_ready()
        response = self._send(method, path, self._side, **kwargs)
        if response.status_code == 403 and not self._api_key:  # the session expired: log in again, once
            with self._lock:
                if self._logins == logins:  # nobody has logged in again meanwhile
                    self._logged_in = False
                logins = self._side_ready()
            response = self._send(method, path, self._side, **kwargs)
        with self._lock:
            if self._api_key:
                return self._keyed_answer(response, path, (200,))
            if response.status_code == 200:
                return response
            if response.status_code == 403 and self._logins == logins:
                self._logged_in = False
            raise self._unexpected(response, path)

    def _side_ready(self) -> int:
        """Log in if needed and give the side session the main session's cookies; the login count."""
        if self._api_key:
            self._check_backoff()
        elif not self._logged_in:
            self._login()
        self._side.cookies = self._session.cookies.copy()
        return self._logins

    def _login(self) -> None:
        """Post the credentials, unless the back-off forbids it; raise on any failure."""
        self._check_backoff()
        self._logged_in = False
        form = {"username": self.username, "password": self._password}
        response = self._send("POST", "auth/login", data=form)
        code, body = response.status_code, response.text.strip()
        if code == 204 or (code == 200 and body == "Ok."):
            self._logged_in = True
            self._logins += 1
            self._app_version = ""  # perhaps a new qBittorrent behind the same address
            self._failures = 0
            self._blocked_until = None
        elif code == 200 and body == "Fails.":
            raise self._refused(InstanceStatus.AUTH_FAILED, "qBittorrent refused the username or password")
        elif code == 401:
            detail = (  # 5.2+ answers a wrong password so; every version a Host header it refuses
                "qBittorrent refused the username or password (it answered 401, which also means a"
                " Host header it does not accept: reverse proxy or port mapping)"
            )
            raise self._refused(InstanceStatus.AUTH_FAILED, detail)
        elif code == 403:
            reason = excerpt(response).rstrip(".") or "403 Forbidden"
            raise self._refused(InstanceStatus.BANNED, f"qBittorrent refuses logins from here: {reason}")
        elif code == 200:
            raise self._fail(
                InstanceError(InstanceStatus.UNKNOWN, f"unexpected login answer: {excerpt(response)}")
            )
        else:
            raise self._unexpected(response, "auth/login")

    def _check_backoff(self) -> None:
        """Raise, without sending anything, while a login back-off is running."""
        until = self.login_blocked_until
        if until is None:
            return
        wait = until - self._clock()
        raise self._fail(
            InstanceError(
                self._block_status,
                f"{self._block_detail}; no new login attempt for another {wait:.0f} s",
                reason=self._block_detail,
                retry_in=wait,
            )
        )

    def _refused(self, status: str, detail: str) -> InstanceError:
        """Start (or lengthen) the back-off after a refused login."""
        first = KEY_BACKOFF_FIRST if self._api_key else BACKOFF_FIRST
        delay = min(first * 2**self._failures, BACKOFF_MAX)
        self._failures += 1
        self._blocked_until = self._clock() + delay
        self._block_status = status
        self._block_detail = detail
        return self._fail(
            InstanceError(
                status, f"{detail}; next login attempt in {delay:.0f} s", reason=detail, retry_in=delay
            )
        )
