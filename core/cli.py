"""`python -m core run | check-config`."""

from __future__ import annotations

import argparse
import sys

from core.config import ConfigError, load_config
from core.logs import mask, setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kefu", description="kefu customer-service hub")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the hub")
    run.add_argument("--config", help="path to bot_config.yaml")
    run.add_argument("--port", type=int, help="override server.port")
    check = sub.add_parser("check-config", help="validate bot_config.yaml and print a summary")
    check.add_argument("config", nargs="?", help="path to bot_config.yaml")
    args = parser.parse_args(argv)

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        redis = mask(config.redis.url) if config.redis.url else "embedded memory store"
        print(f"ok: {config.base_dir / 'bot_config.yaml' if not args.config else args.config}")
        print(f"  server   http://{config.server.host}:{config.server.port}/")
        print(f"  sessions {redis}")
        print(f"  llm      {config.llm.model} at {config.llm.base_url}" if config.llm.enabled else "  llm      offline")
        print(f"  locales  {', '.join(config.shop.locales)} (default {config.shop.default_locale})")
        return 0

    if args.port:
        config = config.model_copy(update={"server": config.server.model_copy(update={"port": args.port})})
    setup_logging(config.log_level, config.log_turn_events)
    import uvloop

    from core.app import StartupError, serve

    try:
        uvloop.run(serve(config))
    except StartupError as exc:
        print(f"kefu cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
