"""scripts/replay_store.py end to end, and published task replays (tests/data) ending in the exact store state."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from core.commerce.demo_store import DemoStore
from core.config import PROJECT_ROOT
from tests.test_commerce_store import ADDRESS, SHARED_DB

SCRIPT = PROJECT_ROOT / "scripts" / "replay_store.py"
REPLAYS = json.loads((Path(__file__).parent / "data" / "commerce_task_replays.json").read_text())["replays"]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("replay_store", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=60, check=False)


def test_replay_applies_ops_in_order_reports_refusals_and_writes_the_store(tmp_path: Path) -> None:
    db = orjson.loads(SHARED_DB.read_bytes())
    pending = next(o for o in db["orders"].values() if o["status"] == "pending")
    ops = [
        {"name": "find_user_id_by_email", "kwargs": {"email": "noah.brown7922@example.com"}},
        {"name": "modify_pending_order_address", "kwargs": {"order_id": pending["order_id"], **ADDRESS}},
        {"name": "cancel_pending_order", "kwargs": {"order_id": pending["order_id"], "reason": "no longer needed"}},
        {"name": "cancel_pending_order", "kwargs": {"order_id": pending["order_id"], "reason": "no longer needed"}},
        {"name": "calculate", "kwargs": {"expression": "2 + 2"}},
        {"name": "transfer_to_human_agents", "arguments": {"summary": "wants a human"}},
        {"name": "drop_all_tables", "kwargs": {}},
        {"name": "get_order_details", "kwargs": {"order": pending["order_id"]}},
        {"name": "modify_user_address", "arguments": {"user_id": "noah_brown_6181", **ADDRESS}},
    ]
    (tmp_path / "ops.json").write_text(json.dumps(ops))
    result = run_script(str(tmp_path / "ops.json"), str(tmp_path / "out.json"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("refused #3 cancel_pending_order(") and "non-pending order" in lines[0]
    assert lines[1].startswith("refused #6 drop_all_tables(") and "unknown operation" in lines[1]
    assert lines[2].startswith("refused #7 get_order_details(") and "bad arguments" in lines[2]
    assert lines[3].startswith("9 operations: 4 applied, 3 refused, 2 skipped")
    assert len(lines) == 4

    raw = (tmp_path / "out.json").read_bytes()
    out = orjson.loads(raw)
    assert raw == json.dumps(out, indent=4, sort_keys=True).encode()  # db.json's layout, keys sorted
    order = out["orders"][pending["order_id"]]
    assert (order["status"], order["cancel_reason"], order["address"]) == ("cancelled", "no longer needed", ADDRESS)
    assert out["users"]["noah_brown_6181"]["address"] == ADDRESS
    assert orjson.loads(SHARED_DB.read_bytes()) == db

    again = run_script(str(tmp_path / "ops.json"), str(tmp_path / "again.json"))
    assert again.returncode == 0
    assert (tmp_path / "again.json").read_bytes() == raw  # byte-stable


def test_replaying_nothing_writes_db_json_with_sorted_keys(tmp_path: Path) -> None:
    (tmp_path / "ops.json").write_text("[]")
    result = run_script(str(tmp_path / "ops.json"), str(tmp_path / "out.json"))
    assert result.returncode == 0
    db = json.loads(SHARED_DB.read_bytes())
    assert (tmp_path / "out.json").read_bytes() == json.dumps(db, indent=4, sort_keys=True).encode()


def test_an_unreadable_ops_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "ops.json").write_text('{"name": "cancel_pending_order"}')
    result = run_script(str(tmp_path / "ops.json"), str(tmp_path / "out.json"))
    assert result.returncode == 2
    assert "JSON list" in result.stderr
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("replay", REPLAYS, ids=[r["task"].rsplit(" ", 1)[-1] for r in REPLAYS])
def test_a_published_task_ends_in_the_exact_store_state(tmp_path: Path, replay: dict[str, Any]) -> None:
    script = load_script()
    store = DemoStore.open(SHARED_DB, tmp_path / "var")
    report = io.StringIO()
    script.replay(store, replay["ops"], report)
    refused = [int(line.split()[1][1:]) for line in report.getvalue().splitlines()]
    assert refused == replay["refused"]
    after = orjson.loads(store.to_json())
    before = orjson.loads(SHARED_DB.read_bytes())
    for kind in ("users", "orders"):
        changed = {rid: rec for rid, rec in after[kind].items() if rec != before[kind][rid]}
        assert changed == replay["changed"][kind]
    assert after["products"] == before["products"]
    store.close()
