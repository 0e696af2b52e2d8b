"""Whether Omnitron says, twice and independently, that one customer is gone (G9).

A 404 on a customer's own URL is one answer, and not a sure one: a proxy or a load balancer in
the middle of a deploy answers 404 for URLs its backend would serve, with the same body. Removing
a live customer on such an answer would drop it from ``customers/`` (and, with erasure on, its
history for good). So a customer is absent only when two answers agree:

* its own URL answers 404, and
* a listing of the pk range holding it and nothing else (``pk__gte=pk&pk__lt=pk+1``, no other
  filter, so whatever its ``modified_date``) answers with a ``count`` of 0.

The own URL is asked first: a live customer answers 200, one request. Any other outcome (the
listing holds a record, readable or not) is ambiguous: the customer is kept, and its range is
looked at again by the next run.
"""

from __future__ import annotations

import enum
import logging

from omnisync.client import CustomerQuery, NotFound, OmnitronClient

log = logging.getLogger("omnisync.sync")


class Absence(enum.Enum):
    GONE = "gone"
    PRESENT = "present"
    DOUBTFUL = "doubtful"  # the answers disagree or one is incomplete: keep, ask again later


def ask_absent(client: OmnitronClient, pk: int) -> tuple[Absence, int]:
    """What Omnitron's two answers say about ``pk``, and the requests it took (1 or 2)."""
    try:
        client.get_customer(pk)
    except NotFound:
        pass
    else:
        return Absence.PRESENT, 1
    query = CustomerQuery(pk_gte=pk, pk_lt=pk + 1, sort=None)
    try:
        page = next(client.list_customers(query, 1), None)
    except NotFound:  # a 404 for a listing is no answer about this customer
        page = None
    else:
        # the range holds this pk alone: any record listed there, readable or not, may be it
        if page is None or (page.count == 0 and not page.results and not page.has_next):
            return Absence.GONE, 2
    log.warning("customer %d: its URL answers 404, a listing of its pk does not agree; kept", pk)
    return Absence.DOUBTFUL, 2
