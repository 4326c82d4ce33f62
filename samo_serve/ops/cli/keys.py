"""``samo-serve keys {create,list,revoke}``: API keys, stored as hashes in the keys file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from samo_serve.ops.cli.common import load_settings
from samo_serve.ops.cli.errors import CliError, user_file

if TYPE_CHECKING:
    from samo_serve.http.api_keys import KeyStore
    from samo_serve.ops.cli.common import Subparsers

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    keys = sub.add_parser("keys", help="create, list and revoke API keys (stored as hashes)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    file_help = "the keys file (default: $SAMO_API_KEYS_FILE)"
    kc = ksub.add_parser("create", help="make a key and print it once")
    kc.add_argument("--name", required=True, help="who or what uses it")
    kc.add_argument("--tier", default="default", help="rate-limit tier (rate_limits.tiers)")
    kc.add_argument(
        "--tenant",
        default=None,
        help="whose data its requests are (keys of one tenant share users and analytics); default: its own",
    )
    kc.add_argument(
        "--scope",
        default="predict,analytics",
        help="comma list of predict, analytics, admin (every tenant, /stats, the dashboard); default: %(default)s",
    )
    kc.add_argument("--file", default=None, help=file_help)
    kc.set_defaults(func=_create)
    kl = ksub.add_parser("list", help="ids, names, tiers; never the keys")
    kl.add_argument("--file", default=None, help=file_help)
    kl.add_argument("--json", action="store_true")
    kl.set_defaults(func=_list)
    kr = ksub.add_parser("revoke", help="stop accepting a key")
    kr.add_argument("id")
    kr.add_argument("--file", default=None, help=file_help)
    kr.set_defaults(func=_revoke)


def _keys_file(args: argparse.Namespace) -> Path:
    path = Path(args.file) if args.file else load_settings().api_keys_file
    if path is None:
        raise CliError("no keys file", "set SAMO_API_KEYS_FILE or pass --file PATH")
    return path


def _key_store(path: Path) -> KeyStore:
    from samo_serve.http.api_keys import KeyStore

    remedy = "fix it, or pass --file with another keys file (samo-serve keys create starts one)"
    # a hand-edited file: JSON that is not {"keys": [{id, name, tier, hash, ...}]}
    with user_file(path, "keys file", remedy, invalid=(ValueError, KeyError, TypeError, AttributeError)):
        return KeyStore(path)


def _create(args: argparse.Namespace) -> int:
    from samo_serve.http.api_keys import check_tenant, parse_scopes

    try:
        scopes = parse_scopes(args.scope)
        tenant = check_tenant(args.tenant) if args.tenant is not None else None
    except ValueError as exc:
        raise CliError(str(exc), "e.g. --tenant acme --scope predict,analytics") from None
    path = _keys_file(args)
    store = _key_store(path)
    with user_file(path, "keys file", "pass --file with a path in a folder you can write"):
        key = store.create(args.name, args.tier, tenant, scopes)
    print(key)
    print(f"# stored as a hash in {path}; this is the only time the key is shown", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    keys = [k.public() for k in _key_store(_keys_file(args)).list()]
    if args.json:
        print(json.dumps(keys, indent=2))
        return 0
    from rich.table import Table

    from samo_serve.ops.report import stdout_console

    table = Table("id", "name", "tier", "tenant", "scopes", "created", "revoked")
    for k in keys:
        scopes = ",".join(k["scopes"]) if isinstance(k["scopes"], tuple | list) else str(k["scopes"])
        table.add_row(
            str(k["id"]),
            str(k["name"]),
            str(k["tier"]),
            str(k["tenant"] or f"{k['id']} (own)"),
            scopes,
            str(k["created_at"]),
            str(k["revoked_at"] or ""),
        )
    stdout_console().print(table)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    path = _keys_file(args)
    try:
        record = _key_store(path).revoke(args.id)
    except KeyError:
        raise CliError(f"no key with id {args.id!r} in {path}", "samo-serve keys list shows the ids") from None
    print(f"revoked {record.id} ({record.name}); replicas stop accepting it within ~2 s")
    return 0
