"""Token authentication for Omnitron: a fixed token, or a login that is renewed once on a 401.

It is an ``httpx.Auth`` flow, so the login request and the single retry after a 401 happen inside
one ``send``: callers never see an expired token, only ``AuthenticationFailed`` when a fresh login
is refused too. Secrets live in ``SecretStr`` and reach only the request being sent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator

import httpx
import orjson
from pydantic import SecretStr

from omnisync.client.errors import (
    AuthenticationFailed,
    NotFound,
    Retriable,
    classify,
    decode_body,
)

LOGIN_PATH = "/api/v1/auth/login/"
log = logging.getLogger("omnisync.client")


class OmnitronAuth(httpx.Auth):
    requires_response_body = True

    def __init__(
        self,
        *,
        token: SecretStr | None = None,
        username: str | None = None,
        password: SecretStr | None = None,
    ) -> None:
        if token is None and (username is None or password is None):
            raise AuthenticationFailed(
                "no credentials: set OMNITRON_TOKEN, or OMNITRON_USERNAME and OMNITRON_PASSWORD"
            )
        self._token = token
        #: OMNITRON_TOKEN, which is used first when a login is configured too
        self._given = token
        #: why the given token was dropped (its 401), for the message if the login fails too
        self._given_refused: str | None = None
        self._username = username
        self._password = password
        self._lock = threading.Lock()

    @property
    def can_login(self) -> bool:
        return self._username is not None and self._password is not None

    def __repr__(self) -> str:
        return f"OmnitronAuth(username={self._username!r}, token={'***' if self._token else None})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        with self._lock:
            token = self._token
        if token is None:
            token = yield from self._login(request)
        request.headers["Authorization"] = f"Token {token.get_secret_value()}"
        response = yield request
        if response.status_code == 401 and self.can_login:
            # The token expired: log in again once, then retry the request once.
            with self._lock:
                if self._token is token:
                    self._token = None
                if token is self._given and self._given_refused is None:
                    # Said, not hidden: a wrong OMNITRON_TOKEN would otherwise go unnoticed.
                    self._given_refused = f"401 on {request.method} {request.url.path}: " + (
                        _detail(response)
                    )
                    log.warning(
                        "Omnitron refused OMNITRON_TOKEN (%s); logging in as OMNITRON_USERNAME "
                        "%r instead",
                        self._given_refused,
                        self._username,
                    )
            token = yield from self._login(request)
            request.headers["Authorization"] = f"Token {token.get_secret_value()}"
            yield request
        elif response.status_code == 401:
            # A fixed token that is refused cannot be renewed: name the setting to fix.
            raise AuthenticationFailed(
                f"Omnitron refused OMNITRON_TOKEN (401 on {request.method} {request.url.path}: "
                f"{_detail(response)}): check OMNITRON_TOKEN, or set OMNITRON_USERNAME and "
                "OMNITRON_PASSWORD to log in instead",
                status=401,
                body=decode_body(response),
            )

    def _login(
        self, original: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, SecretStr]:
        assert self._username is not None
        assert self._password is not None
        url = original.url.copy_with(path=LOGIN_PATH, query=None)
        body = {"username": self._username, "password": self._password.get_secret_value()}
        response = yield httpx.Request(
            "POST",
            url,
            content=orjson.dumps(body),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            # A request built here gets none of the client's settings: without its timeout a
            # server that never answers held the login (and the run) for good.
            extensions={"timeout": original.extensions.get("timeout", {})},
        )
        outcome = classify(response)
        if isinstance(outcome, Retriable):
            raise outcome
        if isinstance(outcome, NotFound):
            raise outcome  # no login there: the URL is wrong, not the user's credentials
        if outcome is not None:
            token_first = (
                f"Omnitron refused OMNITRON_TOKEN ({self._given_refused}), which is used first, "
                "then "
                if self._given_refused
                else "Omnitron refused "
            )
            raise AuthenticationFailed(
                f"{token_first}the login of user {self._username!r} ({response.status_code}): "
                "check "
                + ("OMNITRON_TOKEN, " if self._given_refused else "")
                + "OMNITRON_USERNAME and OMNITRON_PASSWORD",
                status=response.status_code,
                body=outcome.body,
            )
        try:
            token = SecretStr(str(orjson.loads(response.content)["key"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise AuthenticationFailed(
                f"the login answer of {url.host} has no token key", status=response.status_code
            ) from None
        with self._lock:
            self._token = token
        return token


def _detail(response: httpx.Response) -> str:
    """DRF's ``detail`` of a refusal ("Invalid token."), or a short excerpt of its body."""
    body = decode_body(response)
    detail = body.get("detail") if isinstance(body, dict) else body
    return " ".join(str(detail).split())[:120]
