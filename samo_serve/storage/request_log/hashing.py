"""The request log's ``text_hash``: HMAC-SHA256 of the normalized text under a key that never leaves the service.

A bare sha256 let anyone who reads the table test a guess ("ok" -> its hash is in the table). With a
server key a guess cannot be checked without the key, and the same text still gets the same hash, so
L3 (lookup by hash) keeps working. The key comes from ``request_log.hash_key`` (env
``SAMO_REQUEST_LOG__HASH_KEY``), else from ``request_log.hash_key_file`` (default ``data_dir/request-log.key``),
which is created (mode 0600) on first use. Replicas on several machines must share the key (the
setting, or the file on shared storage); otherwise each machine's L3 answers only its own rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from samo_serve.settings import Settings
from samo_serve.storage.cache import normalize_text
from samo_serve.storage.files import private_dir

__all__ = ["TextHasher", "load_or_create_key"]

_KEY_BYTES = 32


def load_or_create_key(path: Path) -> bytes:
    """The key in ``path`` (hex), creating it atomically if missing: replicas starting at once agree on one."""
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    private_dir(path.parent)
    candidate = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secrets.token_hex(_KEY_BYTES) + "\n")
    try:
        os.link(candidate, path)  # fails if another process created it first: then theirs wins
    except FileExistsError:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


class TextHasher:
    """``text_hash(text)``: 64 hex characters, the same for texts that normalize alike."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the request-log hash key must be at least 16 bytes")
        self._key = key

    @classmethod
    def from_settings(cls, settings: Settings) -> TextHasher:
        configured = settings.request_log.hash_key
        if configured is not None:
            return cls(configured.get_secret_value().encode())
        path = settings.request_log.hash_key_file or Path(settings.data_dir) / "request-log.key"
        return cls(load_or_create_key(path))

    def text_hash(self, text: str) -> str:
        return self.hash_normalized(normalize_text(text).encode("utf-8", "surrogatepass"))

    def hash_normalized(self, normalized: bytes) -> str:
        return hmac.new(self._key, normalized, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never show the key
        return "TextHasher(<key>)"
