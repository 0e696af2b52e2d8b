"""How fast this machine is right now: the same pure-Python loop timed in CPU seconds.

Shared 2-core machines of one kind run the same code up to twice as fast at one hour as at another
(docs/performance.md). A benchmark prints this beside its figures, before and after, so that its
seconds, and its ratios to a floor (which also move, less), can be read against the machine's
state that day.
"""

from __future__ import annotations

import time

#: the loop's CPU seconds on this kind of machine at its fastest and at its slowest measured
FASTEST, SLOWEST = 0.31, 0.63


def loop_seconds() -> float:
    """CPU seconds of ``sum(range(3 * 10**7))``, the least of three tries."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        sum(range(3 * 10**7))
        best = min(best, time.process_time() - start)
    return best


def speed_line(when: str) -> str:
    seconds = loop_seconds()
    return (
        f"machine {when}: sum(range(3*10**7)) took {seconds:.2f} CPU-s ({FASTEST:.2f} on this "
        f"kind of machine at its fastest, {SLOWEST:.2f} at its slowest measured): "
        f"{seconds / FASTEST:.2f}x the fastest"
    )


if __name__ == "__main__":
    print(speed_line("now"))
