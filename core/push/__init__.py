"""Proactive pushes: scheduled jobs that message shoppers (and WeChat groups) first.

    config       the `pushes:` section of bot_config.yaml (typed; imported by core.config)
    geo          haversine, and the store index: Redis GEO (GEOSEARCH) or an in-memory grid
    stores       stores with coordinates, opening hours and sample stock (core/data/stores.yaml)
    book         what pushes remember per customer: contacts, location consent, opt-out, caps, sent marks
    rules        quiet hours, daily marketing caps, channel windows: why a recipient is skipped
    delivery     the channel side: what an adapter offers to push (core never imports adapters)
    jobs         each kind of push: whom to message, and what
    report       per run: candidates, chosen, sent, skipped by reason; log line and metrics
    inbox        the engine's hook: opt-out/opt-in words, location consent, contact upkeep
    scheduler    apscheduler, once per cluster (a Redis lock per job and run time), misfire policy
    service      PushService: builds and runs all of the above

This file imports nothing: core.config imports core.push.config while it is itself being loaded.
"""
