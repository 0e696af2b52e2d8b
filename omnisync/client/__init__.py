"""The Omnitron API client (httpx). It knows nothing of Prefect, pandas or the lake.

Public surface: ``OmnitronClient``, ``CustomerQuery``, ``Page``, ``Paginator`` (customers by pk
ranges, whatever the server does with ``sort``), ``Throttle``, ``RetryBudget`` and the errors in
``omnisync.client.errors`` (the tree is drawn there).
"""

from omnisync.client.client import OmnitronClient
from omnisync.client.errors import (
    AnswerLost,
    AuthenticationFailed,
    ClientClosed,
    ConfigurationError,
    DateFilterRejected,
    NotAcceptable,
    NotFound,
    OmnitronError,
    RetriesExhausted,
    UnexpectedResponse,
    ValidationFailed,
)
from omnisync.client.pages import Page, PageIterator
from omnisync.client.paginator import Paginator
from omnisync.client.query import CustomerQuery
from omnisync.client.retry import RetryBudget
from omnisync.client.throttle import Throttle

__all__ = [
    "AnswerLost",
    "AuthenticationFailed",
    "ClientClosed",
    "ConfigurationError",
    "CustomerQuery",
    "DateFilterRejected",
    "NotAcceptable",
    "NotFound",
    "OmnitronClient",
    "OmnitronError",
    "Page",
    "PageIterator",
    "Paginator",
    "RetriesExhausted",
    "RetryBudget",
    "Throttle",
    "UnexpectedResponse",
    "ValidationFailed",
]
