"""Replay store operations on a fresh copy of the demo store and write the final store as JSON.

Usage:  .venv/bin/python scripts/replay_store.py OPS.json OUT.json [--source DB.json]

OPS.json is a JSON list of {"name": <operation>, "kwargs": {...}} ("arguments" is read like "kwargs", as in
tau2-bench task files), applied in order. Operations are the CommerceBackend's (the LLM tool names): reads
run too (and may be refused, e.g. an unknown order), tools that do not touch the store (calculate,
transfer_to_human_agents, think) are skipped. A refused operation is reported on one line and the replay
goes on. OUT.json is the whole store in db.json's layout (4-space indent) with keys sorted, so equal
stores give equal bytes. Exit status 0 whatever was refused; 2 when OPS.json cannot be read.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.commerce.base import READ_OPERATIONS, WRITE_OPERATIONS, CommerceError  # noqa: E402
from core.commerce.demo_store import DemoStore  # noqa: E402

DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "retail" / "db.json"
NOT_STORE_OPERATIONS = frozenset({"calculate", "transfer_to_human_agents", "think"})


def load_ops(path: Path) -> list[dict[str, Any]]:
    ops = orjson.loads(path.read_bytes())
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise ValueError("OPS.json must be a JSON list of {\"name\": ..., \"kwargs\": {...}} objects")
    return ops


def replay(store: DemoStore, ops: list[dict[str, Any]], out: Any = sys.stdout) -> dict[str, int]:
    """Apply `ops` in order; print one line per refused operation; the counts by outcome."""
    counts = {"applied": 0, "refused": 0, "skipped": 0}
    known = set(READ_OPERATIONS) | set(WRITE_OPERATIONS)
    for index, op in enumerate(ops):
        name = op.get("name")
        kwargs = op.get("kwargs", op.get("arguments")) or {}
        if name in NOT_STORE_OPERATIONS:
            counts["skipped"] += 1
            continue
        try:
            if name not in known:
                raise CommerceError(f"Error: unknown operation {name!r}")
            if not isinstance(kwargs, dict):
                raise CommerceError("Error: kwargs must be an object")
            getattr(store, name)(**kwargs)
        except CommerceError as exc:
            counts["refused"] += 1
            print(f"refused #{index} {name}({_brief(kwargs)}): {exc}", file=out)
        except TypeError as exc:  # missing or unexpected arguments
            counts["refused"] += 1
            print(f"refused #{index} {name}({_brief(kwargs)}): Error: bad arguments: {exc}", file=out)
        else:
            counts["applied"] += 1
    return counts


def _brief(kwargs: Any) -> str:
    if not isinstance(kwargs, dict):
        return repr(kwargs)
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ops", type=Path, help="JSON list of {name, kwargs}")
    parser.add_argument("out", type=Path, help="where to write the final store (JSON, db.json layout, keys sorted)")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the demo data set (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        ops = load_ops(args.ops)
    except (OSError, ValueError) as exc:
        print(f"cannot read {args.ops}: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="replay-store-") as work:
        store = DemoStore.open(args.source, Path(work), fsync=False)
        try:
            counts = replay(store, ops)
            args.out.write_bytes(store.to_json())
        finally:
            store.close()
    print(f"{len(ops)} operations: {counts['applied']} applied, {counts['refused']} refused, "
          f"{counts['skipped']} skipped (not store operations); store written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
