"""API keys: created once, stored only as hashes, checked in constant time.

A key looks like ``samo_<id>_<secret>``: the 12-hex-character id is public (it goes into logs and the
request log), the secret is 32 random bytes. Only ``sha256(secret)`` is stored: the secret has 256
bits of entropy, so a slow password hash would add latency to every request and no safety.

The keys file (``SAMO_API_KEYS_FILE``, by default ``$XDG_CONFIG_HOME/samo/keys.json``) is JSON, written
atomically by ``samo-serve keys …``. Every replica stats it at most once a second and re-reads it when its
modification time, size or inode changes, so a key created or revoked takes effect within a second or two
without a restart, and a file that appears after start turns auth on (one that disappears turns it off).

Each key belongs to a tenant (``--tenant NAME``; a key without one is a tenant of its own, named by its id)
and holds scopes: ``predict`` (classify texts), ``analytics`` (read and erase its tenant's data) and
``admin`` (everything, across tenants: /stats, the dashboard's data, any tenant's analytics and erasure).
A file written before tenants existed reads as keys of their own tenants with the default scopes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from samo_serve.storage.files import private_dir

__all__ = [
    "DEFAULT_SCOPES",
    "SCOPES",
    "ApiKey",
    "KeyStore",
    "check_tenant",
    "generate_key",
    "parse_key",
    "parse_scopes",
]

log = logging.getLogger(__name__)

_PREFIX = "samo"
_RECHECK_S = 1.0
SCOPES = ("predict", "analytics", "admin")
DEFAULT_SCOPES = ("predict", "analytics")
_TENANT = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_KEY_ID = re.compile(r"[0-9a-f]{12}")


def parse_scopes(text: str) -> tuple[str, ...]:
    """``"predict,analytics"`` -> the scopes, in canonical order. Raises ValueError naming an unknown one."""
    names = {s.strip() for s in text.split(",") if s.strip()}
    if unknown := names - set(SCOPES):
        raise ValueError(f"unknown scope(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCOPES)}")
    if not names:
        raise ValueError(f"no scope given; choose from {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in names)


def check_tenant(name: str) -> str:
    """A tenant name: the characters of a user id, and never a key id (a key without a tenant is one)."""
    if not _TENANT.fullmatch(name):
        raise ValueError("a tenant is 1-128 characters of A-Z a-z 0-9 . _ : @ -")
    if _KEY_ID.fullmatch(name):
        raise ValueError("a tenant name of 12 hex digits could be taken for a key's own tenant: choose another")
    return name


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    tier: str
    hash: str  # sha256 of the secret, hex
    created_at: str
    revoked_at: str | None = None
    tenant: str | None = None  # None: the key is a tenant of its own
    scopes: tuple[str, ...] = DEFAULT_SCOPES

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def tenant_id(self) -> str:
        """What the request log records as this key's tenant."""
        return self.tenant or self.id

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ApiKey:
        scopes = data.get("scopes")
        fields = {**data, "scopes": tuple(scopes) if isinstance(scopes, list | tuple) else DEFAULT_SCOPES}
        return cls(**fields)  # type: ignore[arg-type]

    def public(self) -> dict[str, object]:
        """Everything but the hash (``keys list``)."""
        return {k: v for k, v in asdict(self).items() if k != "hash"}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_key(
    name: str, tier: str = "default", tenant: str | None = None, scopes: tuple[str, ...] = DEFAULT_SCOPES
) -> tuple[str, ApiKey]:
    """A new key (shown once) and its stored record."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    record = ApiKey(key_id, name, tier, _digest(secret), created, tenant=tenant, scopes=scopes)
    return f"{_PREFIX}_{key_id}_{secret}", record


def parse_key(presented: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    prefix, _, rest = presented.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != _PREFIX or len(key_id) != 12 or not secret:
        return None
    return key_id, secret


class KeyStore:
    """The keys file, cached in memory and re-read when it changes (checked at most once a second)."""

    def __init__(self, path: Path | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._keys: dict[str, ApiKey] = {}
        self._enabled = False
        self._seen: tuple[int, int, int] | None = None  # (mtime_ns, size, inode) of the file read
        self._checked_at = clock()
        self.reload()

    def reload(self) -> None:
        """Read the file if it changed since the last read (one stat when it did not)."""
        try:
            st = self.path.stat() if self.path is not None else None
        except (FileNotFoundError, NotADirectoryError):  # no file (yet): auth off; unreadable: raise
            st = None
        seen = (st.st_mtime_ns, st.st_size, st.st_ino) if st is not None else None
        if seen == self._seen:
            return
        keys: dict[str, ApiKey] = {}
        if self.path is not None and seen is not None:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
            keys = {k["id"]: ApiKey.from_json(k) for k in data.get("keys", [])}
        self._keys, self._seen = keys, seen
        enabled = any(k.active for k in keys.values())
        if enabled != self._enabled:  # operators see in the log when a file change flips auth
            log.log(
                logging.INFO if enabled else logging.WARNING, "API keys %s (%s)", "on" if enabled else "off", self.path
            )
        self._enabled = enabled

    def _maybe_reload(self) -> None:
        now = self._clock()
        if now - self._checked_at >= _RECHECK_S:
            self._checked_at = now
            # A broken file: keep the keys we have (writes are atomic, so only a hand edit gets here).
            with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
                self.reload()

    @property
    def enabled(self) -> bool:
        """Auth is on while the file holds an active key."""
        self._maybe_reload()
        return self._enabled

    def authenticate(self, presented: str) -> ApiKey | None:
        """The active key matching ``presented``, compared in constant time; None otherwise."""
        self._maybe_reload()
        parsed = parse_key(presented.strip())
        if parsed is None:
            return None
        key_id, secret = parsed
        record = self._keys.get(key_id)
        expected = record.hash if record is not None else "0" * 64  # same work for unknown ids
        matches = hmac.compare_digest(_digest(secret), expected)
        return record if matches and record is not None and record.active else None

    def list(self) -> list[ApiKey]:
        self.reload()
        return sorted(self._keys.values(), key=lambda k: k.created_at)

    def create(
        self, name: str, tier: str = "default", tenant: str | None = None, scopes: tuple[str, ...] = DEFAULT_SCOPES
    ) -> str:
        self.reload()
        key, record = generate_key(name, tier, tenant, scopes)
        self._keys[record.id] = record
        self._save()
        return key

    def revoke(self, key_id: str) -> ApiKey:
        """Raises KeyError for an unknown id."""
        self.reload()
        record = replace(self._keys[key_id], revoked_at=datetime.now(UTC).isoformat(timespec="seconds"))
        self._keys[key_id] = record
        self._save()
        return record

    def _save(self) -> None:
        if self.path is None:
            raise ValueError("no keys file configured (SAMO_API_KEYS_FILE or --file)")
        private_dir(self.path.parent)
        payload = json.dumps({"keys": [asdict(k) for k in self._keys.values()]}, indent=2)
        # Atomic replace, owner-only: replicas never read half a file, and hashes stay private.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(payload)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._seen = None
        self.reload()
