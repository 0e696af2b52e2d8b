"""omnisync: Omnitron customers to a Parquet lake, and ERP codes back to Omnitron.

The library package: settings, the command line, the Omnitron client (``omnisync.client``),
the state store (``omnisync.state``) and the lake writer (``omnisync.lake``).
"""

__version__ = "0.1.0"
