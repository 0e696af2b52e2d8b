"""``python -m bench.rusage CMD ...``: run CMD as a child of this small process and print its wall
time, CPU (user+sys) and peak RSS as one JSON line, with CMD's stdout and stderr.

Linux counts the memory a process had before ``exec`` in its peak RSS: a command started
directly from a large benchmark process would report the benchmark's size. Started from here
(about 10 MiB), the figure is the command's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time


def main() -> None:
    started = time.perf_counter()
    process = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stderr is not None
    # both pipes read to the end before waiting (a full pipe would stop the command), and the
    # child reaped here, by wait4, for its own rusage (communicate() would reap it first)
    stdout = process.stdout
    captured: list[bytes] = []
    reader = threading.Thread(target=lambda: captured.append(stdout.read()))
    reader.start()
    errors = process.stderr.read().decode(errors="replace")
    reader.join()
    out = captured[0].decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    figures = {
        "wall": time.perf_counter() - started,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mib": usage.ru_maxrss / 1024,
        "status": status,
        "stdout": out,
        "stderr": errors,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
