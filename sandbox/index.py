"""A sorted set of integers that stays cheap to change: the store's indexes on pk and on
``(modified_date, pk)``.

One sorted Python list would make every insert and delete in its middle move up to a million
pointers, and writers in the sandbox's modes update customers all the time. The values are kept
instead in sorted blocks of about ``LOAD`` values (the layout of ``sortedcontainers.SortedList``,
which this project does not depend on), so that a change moves one block, and a rank, a count or
a run of ``k`` values from a position costs O(log N + k). Block start positions are recomputed
lazily, once after any number of changes, at the first read that needs them.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Iterator, Sequence

LOAD = 1000


class SortedInts(Sequence[int]):
    """Distinct integers in ascending order, addressed by value (``rank``) or by position."""

    def __init__(self, values: Iterable[int] = (), load: int = LOAD) -> None:
        ordered = sorted(set(values))
        self._load = load
        self._blocks: list[list[int]] = [
            ordered[i : i + load] for i in range(0, len(ordered), load)
        ]
        self._maxes: list[int] = [block[-1] for block in self._blocks]
        self._len = len(ordered)
        self._starts: list[int] | None = None

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[int]:
        return itertools.chain.from_iterable(self._blocks)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        b = bisect.bisect_left(self._maxes, value)
        if b == len(self._maxes):
            return False
        block = self._blocks[b]
        i = bisect.bisect_left(block, value)
        return i < len(block) and block[i] == value

    def _block_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = [0, *itertools.accumulate(len(b) for b in self._blocks)][:-1]
        return self._starts

    def add(self, value: int) -> None:
        """Insert ``value``; nothing happens if it is there already."""
        blocks, maxes = self._blocks, self._maxes
        if not blocks:
            blocks.append([value])
            maxes.append(value)
        else:
            b = bisect.bisect_left(maxes, value)
            if b == len(blocks):
                b -= 1
                blocks[b].append(value)
                maxes[b] = value
            else:
                block = blocks[b]
                i = bisect.bisect_left(block, value)
                if block[i] == value:
                    return
                block.insert(i, value)
            block = blocks[b]
            load = self._load
            if len(block) > 2 * load:
                blocks[b : b + 1] = [block[:load], block[load:]]
                maxes[b : b + 1] = [block[load - 1], block[-1]]
        self._len += 1
        self._starts = None

    def remove(self, value: int) -> None:
        """Delete ``value``; KeyError if it is not there."""
        blocks, maxes = self._blocks, self._maxes
        b = bisect.bisect_left(maxes, value)
        if b == len(blocks):
            raise KeyError(value)
        block = blocks[b]
        i = bisect.bisect_left(block, value)
        if i == len(block) or block[i] != value:
            raise KeyError(value)
        del block[i]
        if block:
            maxes[b] = block[-1]
        else:
            del blocks[b]
            del maxes[b]
        self._len -= 1
        self._starts = None

    def rank(self, value: int) -> int:
        """How many values are less than ``value``: the position where it is or would be."""
        b = bisect.bisect_left(self._maxes, value)
        if b == len(self._maxes):
            return self._len
        return self._block_starts()[b] + bisect.bisect_left(self._blocks[b], value)

    def __getitem__(self, position: int) -> int:  # type: ignore[override]
        if position < 0:
            position += self._len
        if not 0 <= position < self._len:
            raise IndexError(position)
        starts = self._block_starts()
        b = bisect.bisect_right(starts, position) - 1
        return self._blocks[b][position - starts[b]]

    def between(self, start: int, stop: int) -> list[int]:
        """The values at positions ``start`` (inclusive) to ``stop`` (exclusive), ascending."""
        start, stop = max(start, 0), min(stop, self._len)
        if start >= stop:
            return []
        starts = self._block_starts()
        b = bisect.bisect_right(starts, start) - 1
        offset = start - starts[b]
        wanted = stop - start
        found: list[int] = []
        blocks = self._blocks
        while len(found) < wanted:
            found.extend(blocks[b][offset : offset + wanted - len(found)])
            b += 1
            offset = 0
        return found
