"""The ``omnisync`` commands, one module per command (``sandbox`` and ``demo`` share one), and
what they share: the terminal (``terminal``) and the mapping of a user's mistakes to one line
(``user_errors``). ``omnisync.cli`` assembles them into the app.

Each module imports only typer and rich at the top; what a command runs is imported inside it,
so a command that fails on a user's mistake answers before the sync's, the lake's or Prefect's
code loads.
"""
