"""The scan's results table: :class:`ScanResult` and its CSV and JSON tables, which the scan
shares with the counting experiment and so live in the shared layer :mod:`bumphunt.results`."""

from ..results import COLUMNS, STRING_COLUMNS, ScanResult, read_table, table_csv, write_table

__all__ = ["COLUMNS", "STRING_COLUMNS", "ScanResult", "read_table", "table_csv", "write_table"]
