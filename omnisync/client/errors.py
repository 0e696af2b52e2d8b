"""Errors of the Omnitron client, classified by what the caller should do next.

    OmnitronError                  root: anything the client raises
    ├── ConfigurationError         the client cannot be built as configured: fix the setting named
    ├── ClientClosed               the run closed its client (it is stopping): nothing was sent
    ├── RetriesExhausted           transient failures outlasted the retry budget: try the run later
    ├── AnswerLost                 a write may have been applied, its answer never came: re-read
    │                              the object, then decide; never send it again blindly
    ├── AuthenticationFailed       credentials missing, wrong or expired: fix the configuration
    ├── NotFound                   404: the object (or the page) is not there
    ├── ValidationFailed           400: the server rejected the input; ``errors`` has DRF's fields
    │   └── DateFilterRejected     400 "Enter a valid date." on a datetime date filter
    ├── NotAcceptable              406: a business rule refused the change; ``error_code``
    └── UnexpectedResponse         anything else (403, 409, 2xx that is not JSON, ...): fatal

``Retriable`` is internal: the retry layer raises and catches it and turns the last one into
``RetriesExhausted``, or, for a write that may have reached the server, into ``AnswerLost`` at
once: a read is retried freely, a write only when it certainly never arrived. Every message is
passed through the client's redactor, so no secret the client holds can reach a log or a
traceback through an error.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

BODY_EXCERPT = 300


class OmnitronError(Exception):
    """Root of the client's errors. ``status`` is the HTTP status when there was a response;
    ``unsent`` says the request never left this process (a write that failed so was not applied)."""

    status: int | None = None

    def __init__(
        self, message: str, *, status: int | None = None, body: Any = None, unsent: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.unsent = unsent


class ConfigurationError(OmnitronError):
    pass


class ClientClosed(OmnitronError):
    """The run closed its client (it is stopping: Ctrl-C, or an error on another thread): a
    window thread still running sends nothing more, and its window is not run again."""

    @classmethod
    def unsent_request(cls, method: str, path: str) -> ClientClosed:
        return cls(
            f"{method} {path} not sent: the run is stopping (its client is closed)", unsent=True
        )

    @classmethod
    def while_answered(cls, method: str, path: str) -> ClientClosed:
        return cls(
            f"{method} {path} sent, its answer not read: the run is stopping (its client was "
            "closed); a change it asked for may have been made"
        )


class RetriesExhausted(OmnitronError):
    pass


class AuthenticationFailed(OmnitronError):
    pass


class AnswerLost(OmnitronError):
    """A write (PATCH, PUT, POST) whose answer was lost after it may have reached the server: a
    timeout after sending, a 5xx, a connection broken mid-way. It may have been applied. The
    caller re-reads the object and decides; the client never sends it again on its own."""


class NotFound(OmnitronError):
    @property
    def invalid_page(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("detail") == "Invalid page."


class ValidationFailed(OmnitronError):
    @property
    def errors(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {"non_field_errors": [self.body]}


class DateFilterRejected(ValidationFailed):
    """The server takes only dates (``YYYY-MM-DD``) in its date filters (docs/omnitron-api.md)."""


class NotAcceptable(OmnitronError):
    @property
    def error_code(self) -> str | None:
        return self.body.get("error_code") if isinstance(self.body, dict) else None


class UnexpectedResponse(OmnitronError):
    pass


class Retriable(Exception):
    """A failure worth another attempt: 429, 5xx, a timeout or a broken connection.

    ``unsent`` is True only when the request certainly did not take effect: the connection was
    never made, or a 429 or 503 came with ``Retry-After`` (the server refused it before acting).
    Only such a failure lets a write be sent again without a look at what it may have done."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        unsent: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.unsent = unsent


def decode_body(response: httpx.Response) -> Any:
    """The JSON body, or the text (cut short) when the body is not JSON."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:BODY_EXCERPT]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; HTTP dates are rare here and treated as absent."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _excerpt(body: Any) -> str:
    text = body if isinstance(body, str) else orjson.dumps(body).decode()
    text = " ".join(text.split())
    return text if len(text) <= BODY_EXCERPT else text[:BODY_EXCERPT] + "..."


def _is_date_filter_rejection(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    return any(
        key.split("__")[0] in ("modified_date", "created_date")
        and isinstance(messages, list)
        and "Enter a valid date." in messages
        for key, messages in body.items()
    )


def classify(response: httpx.Response) -> OmnitronError | Retriable | None:
    """The one place that maps an HTTP answer to what the caller should do (None: success)."""
    status = response.status_code
    if status < 300:
        return None
    where = f"{response.request.method} {response.request.url.path}"
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return Retriable(
            f"{where} answered {status}",
            status=status,
            retry_after=retry_after,
            unsent=status in (429, 503) and retry_after is not None,
        )
    body = decode_body(response)
    message = f"{where} answered {status}: {_excerpt(body)}"
    if status in (401, 403):
        return AuthenticationFailed(message, status=status, body=body)
    if status == 404:
        return NotFound(message, status=status, body=body)
    if status == 400:
        kind = DateFilterRejected if _is_date_filter_rejection(body) else ValidationFailed
        return kind(message, status=status, body=body)
    if status == 406:
        return NotAcceptable(message, status=status, body=body)
    return UnexpectedResponse(message, status=status, body=body)
