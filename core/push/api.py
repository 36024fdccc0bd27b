"""Operator endpoints for pushes (under /api/, so `admin.token` protects them):

    GET  /api/pushes/runs?limit=50   the latest run reports of the cluster, newest first
    POST /api/pushes/{job}/run       run a configured job now (outside its schedule); its report
"""

from __future__ import annotations

from aiohttp import web

from core.http_errors import json_error
from core.push.service import PushService


class PushApi:
    def __init__(self, service: PushService) -> None:
        self.service = service

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/api/pushes/runs", self.runs)
        app.router.add_post("/api/pushes/{job}/run", self.run_now)

    async def runs(self, request: web.Request) -> web.Response:
        try:
            limit = max(1, min(200, int(request.query.get("limit", "50"))))
        except ValueError:
            return json_error(400, "invalid_request", "'limit' must be a whole number")
        return web.json_response({"runs": await self.service.recent_runs(limit)})

    async def run_now(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job"]
        try:
            self.service.pushes.job(job_id)
        except KeyError:
            return json_error(404, "not_found", f"no push job {job_id!r} in bot_config.yaml")
        report = await self.service.run(job_id)
        return web.json_response(report.as_dict())
