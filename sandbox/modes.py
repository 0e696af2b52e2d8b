"""The sandbox's test modes, set at start (CLI flags) or at run time (``PATCH /_sandbox/modes``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal["429", "500", "502", "503", "drop", "slow", "409", "404"]
#: the faults a real Omnitron shows now and then, and the random ones by default
TRANSIENT_FAULTS: tuple[FaultKind, ...] = ("429", "500", "502", "503", "drop", "slow")
#: ... and, for queued faults, ``409``, an answer no client expects (a defect to debug), and
#: ``404`` as a proxy answers during a deploy (the API's own body, for a URL that exists)
ALL_FAULTS: tuple[FaultKind, ...] = (*TRANSIENT_FAULTS, "409", "404")
LostAnswerKind = Literal["502", "reset", "timeout"]
ALL_LOST_ANSWERS: tuple[LostAnswerKind, ...] = ("502", "reset", "timeout")


class FaultModes(BaseModel):
    """Random faults on ``/api/`` requests. ``502`` has an HTML body, as a proxy's would."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(0.0, ge=0.0, le=1.0, description="share of API requests that fail")
    kinds: list[FaultKind] = Field(default_factory=lambda: list(TRANSIENT_FAULTS))
    retry_after_seconds: int = Field(1, ge=0, description="Retry-After sent with 429 and 503")
    slow_seconds: float = Field(2.0, ge=0.0, description="delay of a 'slow' fault")
    seed: int = 0


class LostAnswerModes(BaseModel):
    """PATCHes that are applied, then answered with a failure: the write happened, the client
    cannot know it. ``502`` is a proxy's page, ``reset`` a connection closed half-way through
    the answer, ``timeout`` an answer held back past the client's timeout, then dropped."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(
        0.0, ge=0.0, le=1.0, description="share of applied PATCHes whose answer is lost"
    )
    kinds: list[LostAnswerKind] = Field(default_factory=lambda: list(ALL_LOST_ANSWERS))
    edit_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of those followed at once by a person's edit of the customer's erp_code",
    )
    timeout_seconds: float = Field(
        35.0,
        ge=0.0,
        description="how long a 'timeout' holds the answer before dropping it (above the "
        "client's timeout, 30 s by default, or the client sees a reset)",
    )
    seed: int = 0


class SandboxModes(BaseModel):
    """Everything that makes the sandbox harder to sync from than a quiet server."""

    model_config = ConfigDict(extra="forbid")

    writers_per_second: float = Field(
        0.0, ge=0.0, description="live writer operations per second (modify or create)"
    )
    writer_create_share: float = Field(0.2, ge=0.0, le=1.0)
    writer_delete_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of the writer operations that do not create "
        "which delete a customer (the rest modify one)",
    )
    creates_per_list: int = Field(
        0,
        ge=0,
        description="customers created right after each list answer, between the "
        "page reads of a client",
    )
    shuffle_ties: bool = Field(False, description="random order among equal sort keys, per request")
    late_commit_seconds: float = Field(
        0.0, ge=0.0, description="writer changes become visible this long after their modified_date"
    )
    date_only_filters: bool = Field(False, description="answer 400 to datetime date filters")
    utc_offset_hours: float = Field(
        0.0,
        ge=-12,
        le=14,
        description="the server's TIME_ZONE: a bare date in a filter means midnight there",
    )
    ignore_sort: bool = Field(
        False, description="ignore ?sort= and answer in the server's own order (newest first)"
    )
    date_skew_seconds: float | None = Field(
        0.0,
        description="the Date header's clock minus the data's (a web server whose clock differs "
        "from the database's); None sends no Date header at all",
    )
    added_fields: dict[str, Any] = Field(
        default_factory=dict,
        description="fields a newer Omnitron sends that the API does not document",
    )
    token_max_requests: int | None = Field(
        None, ge=1, description="a token stops working after this many requests"
    )
    max_limit: int = Field(1000, ge=1, description="server-side cap on ?limit=")
    default_limit: int = Field(20, ge=1)
    faults: FaultModes = Field(default_factory=FaultModes)
    lost_answers: LostAnswerModes = Field(default_factory=LostAnswerModes)
