"""``python -m bench.rusage CMD ...``: run CMD as a child of this small process and print its wall
time, CPU (user+sys) and peak RSS as one JSON line, then CMD's stderr tail if it failed.

Linux counts the memory a process had before ``exec`` in its peak RSS: a command started
directly from a large benchmark process would report the benchmark's size. Started from here
(about 10 MiB), the figure is the command's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main() -> None:
    started = time.perf_counter()
    process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    errors = process.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    figures = {
        "wall": time.perf_counter() - started,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mib": usage.ru_maxrss / 1024,
        "status": status,
        "stderr": errors[-3000:],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
