"""The design's boundaries, checked on the import graph: core never imports adapters; adapters
import only the shared types (core.message, core.config, core.http_errors); skills never see channels."""

from __future__ import annotations

import ast
from pathlib import Path

from core.config import PROJECT_ROOT

ADAPTER_MAY_IMPORT = {"core.message", "core.config", "core.http_errors"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((PROJECT_ROOT / folder).rglob("*.py"))


def test_core_never_imports_adapters_except_the_composition_root() -> None:
    for path in modules("core"):
        if path.name == "app.py":
            continue
        bad = {m for m in imports(path) if m == "adapters" or m.startswith("adapters.")}
        assert not bad, f"{path.relative_to(PROJECT_ROOT)} imports {bad}"


def test_adapters_import_only_the_shared_types() -> None:
    for path in modules("adapters"):
        core = {m for m in imports(path) if m == "core" or m.startswith("core.")}
        assert core <= ADAPTER_MAY_IMPORT, f"{path.relative_to(PROJECT_ROOT)} imports {core - ADAPTER_MAY_IMPORT}"


def test_skills_know_nothing_of_channels_or_the_llm() -> None:
    for path in modules("core/skills"):
        bad = {m for m in imports(path) if m.startswith(("adapters", "core.llm", "core.engine", "aiohttp"))}
        assert not bad, f"{path.relative_to(PROJECT_ROOT)} imports {bad}"
