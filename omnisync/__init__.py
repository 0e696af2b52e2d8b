"""omnisync: Omnitron customers to a Parquet lake, and ERP codes back to Omnitron.

The library package: settings, the command line, the Omnitron client (``omnisync.client``),
the state store (``omnisync.state``) and the lake writer (``omnisync.lake``).
"""

import os

__version__ = "0.1.0"

# Arrow's C++ code (the Parquet reader and writer, compute kernels) allocates from the pool
# this variable names, read once when pyarrow is first imported; ``pyarrow.set_memory_pool``
# changes only what Python-level calls use. Its default, mimalloc, keeps freed pages for
# reuse, so a sync's memory would not come back after each window (omnisync/memory.py). A
# choice made in the environment is kept.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
