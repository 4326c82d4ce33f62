"""The request log: one row per classified text in PostgreSQL (asyncpg) or SQLite, off the request path."""

from samo_serve.storage.request_log.hashing import TextHasher
from samo_serve.storage.request_log.log import RequestLog, parse_range
from samo_serve.storage.request_log.rows import LogRow

__all__ = ["LogRow", "RequestLog", "TextHasher", "parse_range"]
