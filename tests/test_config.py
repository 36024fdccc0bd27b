"""bot_config.yaml: the shipped file validates; errors name the file, the key path and the expectation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.config import DEFAULT_CONFIG_PATH, PROJECT_ROOT, ConfigError, load_config, parse_config


def test_the_shipped_config_is_valid_and_offline_by_default() -> None:
    config = load_config(DEFAULT_CONFIG_PATH, env={})
    assert config.server.port == 8080
    assert config.redis.url == ""
    assert config.llm.enabled is False
    assert config.nlu.threshold == 0.85
    assert config.messages.max_text_chars == 4096
    assert config.resolve_path(config.demo_store.source).exists()


def test_secrets_come_from_the_environment() -> None:
    config = load_config(DEFAULT_CONFIG_PATH, env={"DEEPSEEK_API_KEY": "sk-abc", "REDIS_URL": "redis://r:6379/1"})
    assert config.llm.api_key == "sk-abc" and config.llm.enabled
    assert config.redis.url == "redis://r:6379/1"


def test_a_required_variable_that_is_missing_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bot_config.yaml"
    path.write_text("llm:\n  api_key: ${SHOP_LLM_KEY}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert str(path) in str(error.value)
    assert "llm.api_key" in str(error.value) and "SHOP_LLM_KEY" in str(error.value)


@pytest.mark.parametrize(
    ("yaml_text", "fragments"),
    [
        ("server:\n  port: lots\n", ["server.port", "valid integer", "'lots'"]),
        ("nlu:\n  threshold: 1.5\n", ["nlu.threshold", "less than or equal to 1"]),
        ("sessions:\n  histroy_turns: 5\n", ["sessions.histroy_turns", "unknown key"]),
        ("shop:\n  locales: []\n", ["shop.locales", "at least one locale"]),
        ("- just\n- a list\n", ["expected a mapping"]),
        ("server: [port: 1\n", ["not valid YAML"]),
    ],
)
def test_errors_name_file_key_path_and_expectation(tmp_path: Path, yaml_text: str, fragments: list[str]) -> None:
    path = tmp_path / "bot_config.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    message = str(error.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message


def test_relative_paths_resolve_from_the_config_folder(tmp_path: Path) -> None:
    config = parse_config({"demo_store": {"data_dir": "state"}}, env={}, base_dir=tmp_path)
    assert config.resolve_path(config.demo_store.data_dir) == tmp_path / "state"


def test_check_config_command(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "core", "check-config"], cwd=PROJECT_ROOT,
                        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert "llm      offline" in ok.stdout and "embedded memory store" in ok.stdout

    bad = tmp_path / "bot_config.yaml"
    bad.write_text("server:\n  port: 0\n")
    result = subprocess.run([sys.executable, "-m", "core", "check-config", str(bad)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "server.port" in result.stderr and str(bad) in result.stderr


def test_check_config_masks_a_redis_password() -> None:
    result = subprocess.run([sys.executable, "-m", "core", "check-config"], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://:hunter2@db:6379/0"},
                            timeout=30)
    assert result.returncode == 0
    assert "hunter2" not in result.stdout and "redis://:***@db:6379/0" in result.stdout
