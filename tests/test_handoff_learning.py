"""The learning loop: unknown questions and agents' resolutions become per-language Rasa NLU drafts."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import yaml

from core.config import PROJECT_ROOT
from tests.conftest import hub_client, make_config, say

SCRIPT = PROJECT_ROOT / "scripts" / "export_learning.py"


async def run_export(*args: str) -> str:
    # An asyncio subprocess: the hub it reads from runs in this event loop.
    process = await asyncio.create_subprocess_exec(sys.executable, str(SCRIPT), *args, cwd=PROJECT_ROOT,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return out.decode()


def examples(path: Path) -> dict[str, list[str]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["version"] == "3.1"
    return {block["intent"]: [line[2:] for line in block["examples"].splitlines()] for block in data["nlu"]}


async def test_resolutions_and_unknown_questions_export_as_nlu_drafts(tmp_path: Path) -> None:
    config = make_config(tmp_path, admin={"token": "op-secret"})
    async with hub_client(config) as (client, hub):
        desk = hub.engine.desk
        await say(client, "hal", "能开增值税专票吗")  # unknown, then handed over on the second miss
        await say(client, "hal", "专票抬头写公司名可以吗")
        ticket = (await hub.store.load("web:hal")).handoff.ticket_id
        assert ticket is not None
        await desk.claim(ticket, "alice")
        await desk.resolve(ticket, "alice", "explained VAT invoices", label="invoice")
        await say(client, "ann", "what is the meaning of life", locale="en")  # unknown, not handed over
        await say(client, "bob", "你好")  # known: nothing to learn
        out = tmp_path / "drafts"
        printed = await run_export("--from-hub", str(client.make_url("/")), "--token", "op-secret", str(out))
    assert "-> 2 draft(s)" in printed
    zh = examples(out / "zh" / "nlu.yml")
    assert zh["invoice"] == ["能开增值税专票吗", "专票抬头写公司名可以吗"], "labelled by the agent, not guessed"
    assert "unlabelled" not in zh, "a text an agent labelled is not also listed as a guess"
    en = examples(out / "en" / "nlu.yml")
    assert en == {"unlabelled": ["what is the meaning of life"]}
    assert "labelled by agents" in (out / "zh" / "nlu.yml").read_text(encoding="utf-8")


async def test_known_training_texts_and_duplicates_are_left_out(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.jsonl"
    resolutions = tmp_path / "resolutions.jsonl"
    unknown.write_text("\n".join(json.dumps(i, ensure_ascii=False) for i in [
        {"text": "Where is my   order?", "locale": "en", "top": [{"intent": "order_status", "confidence": 0.5}]},
        {"text": "where is my order?", "locale": "en", "top": []},
        {"text": "返品の送料は？", "locale": "ja", "top": [{"intent": "return_request", "confidence": 0.4}]},
    ]), encoding="utf-8")
    resolutions.write_text(json.dumps({"texts": ["返品の送料は？"], "label": "return_request", "locale": "ja"},
                                      ensure_ascii=False), encoding="utf-8")
    data = tmp_path / "nlu-data" / "en"
    data.mkdir(parents=True)
    (data / "nlu.yml").write_text('version: "3.1"\nnlu:\n- intent: order_status\n  examples: |\n'
                                  "    - where is [my](x) order?\n", encoding="utf-8")
    out = tmp_path / "drafts"
    await run_export("--from-files", str(unknown), str(resolutions), "--nlu-data", str(tmp_path / "nlu-data"),
                     str(out))
    assert not (out / "en").exists(), "already in the training data (annotations aside), twice"
    assert examples(out / "ja" / "nlu.yml") == {"return_request": ["返品の送料は？"]}
