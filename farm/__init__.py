"""The reference farm: a real HTTP server speaking the farm downloads API.

It keeps jobs, tasks, Downloads, files and statuses in SQLite, serves file bytes at signed
URLs, and records every lease, status report and file request in an audit table. It powers
`cdl-tui --demo`, the integration tests and the benchmarks.
"""
