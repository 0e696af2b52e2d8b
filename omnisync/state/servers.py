"""What runs learned of an Omnitron server: whether its date filters take datetimes.

Asking costs a request, and the answer does not change from one run to the next, so a run
uses the answer an earlier run recorded for the same server (keyed by its URL, never with
credentials). A run whose answers contradict it records what they showed. Not fenced: it says
something of the server, not of a stream, and any run may learn it.
"""

from __future__ import annotations

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from omnisync.state.schema import servers
from omnisync.state.times import from_us, iso, now_us
from omnisync.url_credentials import without_userinfo


def _key(url: str) -> str:
    return without_userinfo(url.strip().rstrip("/"))[:500]


class Servers:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def datetime_filters(self, url: str) -> bool | None:
        """Whether ``url``'s date filters take datetimes, as last recorded (None: not known)."""
        with self.engine.connect() as connection:
            value = connection.execute(
                select(servers.c.datetime_filters).where(servers.c.url == _key(url))
            ).scalar()
        return None if value is None else bool(value)

    def remember(self, url: str, datetime_filters: bool) -> None:
        us = now_us()
        row = {"datetime_filters": datetime_filters, "seen_us": us, "seen_iso": iso(from_us(us))}
        key = _key(url)
        with self.engine.begin() as connection:
            done = connection.execute(update(servers).where(servers.c.url == key).values(**row))
            if done.rowcount:
                return
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(servers).values(url=key, **row))
        except IntegrityError:  # another run recorded it meanwhile: the same answer, or newer
            return
