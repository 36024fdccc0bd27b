"""Hub processes for the multi-process tests: start one on a config file, wait until its /healthz answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from core.config import PROJECT_ROOT


def hub_log(config_path: Path, port: int) -> Path:
    """Where the hub on `port` writes its stderr: beside its config, read back when it fails to start."""
    return config_path.parent / f"hub-{port}.log"


def start_hub(config_path: Path, port: int) -> subprocess.Popen[bytes]:
    """`python -m core run` on `config_path`; REDIS_URL is dropped so the config's Redis is the one used."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    with open(hub_log(config_path, port), "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "core", "run", "--config", str(config_path), "--port", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
        )


def wait_ready(port: int, process: subprocess.Popen[bytes], within: float = 20.0) -> None:
    """Until /healthz answers 200; fails with the hub's log if it exits or does not answer in time."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"hub on port {port} exited: {_log_tail(process)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"hub on port {port} did not become ready: {_log_tail(process)}")


def _log_tail(process: subprocess.Popen[bytes]) -> str:
    args = [str(a) for a in process.args] if isinstance(process.args, list) else []
    config = Path(args[args.index("--config") + 1]) if "--config" in args else None
    port = int(args[args.index("--port") + 1]) if "--port" in args else 0
    path = hub_log(config, port) if config else None
    return path.read_text(errors="replace")[-2000:] if path and path.exists() else ""
