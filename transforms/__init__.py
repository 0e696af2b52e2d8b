"""Pure transforms: API records to typed Arrow tables, ERP matching and diff.

Nothing here imports Prefect, httpx or the client: tables in, tables out.
"""
