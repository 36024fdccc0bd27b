"""The `pushes:` section of bot_config.yaml (documented key by key in that file).

Only pydantic (and apscheduler's trigger parser, to check cron expressions) is imported here: core.config
imports this module while it is being loaded itself.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_JOB_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)") from None
    return name


class QuietHours(_Spec):
    """No push in [start, end) of the shopper's local time; end before start spans midnight."""

    start: dt.time = dt.time(21, 0)
    end: dt.time = dt.time(9, 0)

    def contains(self, local: dt.time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


class Misfire(_Spec):
    """What happens to a run that was due while no hub process was up (only a Redis job store knows)."""

    policy: Literal["run_once", "skip"] = "run_once"
    # run_once: missed runs (however many) become one run at start, unless the last is older than this.
    max_delay_s: int = Field(6 * 3600, ge=1)


class TemplateRoute(_Spec):
    """A WeChat template message (Official Account) or subscribe message (mini-program) for a push kind,
    used outside the customer-service window. `data` maps the template's field names to format strings
    over the push's fields (e.g. {first: "{text}", keyword1: "{store}"})."""

    template_id: str = Field(min_length=1)
    page: str = ""  # mini-program page / Official Account link opened by a tap
    data: dict[str, str] = {}


class ChannelRule(_Spec):
    # The platform lets the bot message a shopper only this long after the shopper's last message;
    # None: no window.
    window_hours: float | None = Field(None, gt=0)
    templates: dict[str, TemplateRoute] = {}  # push kind -> template, used outside the window


class LocationConfig(_Spec):
    consent_days: float = Field(30, gt=0)  # a "yes" to nearby offers lasts this long
    keep_hours: float = Field(72, gt=0)  # a reported location is used this long (never beyond the consent)
    ask_ttl_s: int = Field(600, ge=10)  # a shared location waits this long for the shopper's answer


class LogisticsConfig(_Spec):
    provider: Literal["demo"] = "demo"
    demo_anomaly_rate: float = Field(0.08, ge=0, le=1)  # share of shipped parcels the demo reports as stuck


class _Job(_Spec):
    id: str
    enabled: bool = True
    cron: str = ""  # five fields (minute hour day month weekday), in pushes.timezone
    interval_s: int = Field(0, ge=0)
    misfire: Misfire | None = None  # None: pushes.misfire

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _JOB_ID.match(value):
            raise ValueError("a job id is 1-64 letters, digits, _ or -")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if value:
            try:
                CronTrigger.from_crontab(value, timezone="UTC")
            except ValueError as exc:
                raise ValueError(f"not a cron expression ({exc})") from None
        return value

    @model_validator(mode="after")
    def _one_trigger(self) -> _Job:
        if bool(self.cron) == bool(self.interval_s):
            raise ValueError(f"job {self.id}: give exactly one of cron or interval_s")
        return self

    @property
    def trigger_text(self) -> str:
        return f"cron {self.cron}" if self.cron else f"every {self.interval_s} s"


class SamplePickupJob(_Job):
    kind: Literal["sample_pickup"]
    marketing: bool = True
    sample: str = Field(min_length=1)  # a sample id of the stores file
    radius_km: float = Field(3.0, gt=0, le=100)
    repeat_after_days: float = Field(7, gt=0)  # a shopper offered this sample is not offered it again before


class PaymentReminderJob(_Job):
    kind: Literal["payment_reminder"]
    marketing: bool = False
    # balance_due: the order's items cost more than was paid; pending_status: every order whose status says
    # pending (for a shop backend that records the payment only when it processes the order).
    unpaid: Literal["balance_due", "pending_status"] = "balance_due"
    repeat_after_hours: float = Field(24, gt=0)


class LogisticsAlertJob(_Job):
    kind: Literal["logistics_alert"]
    marketing: bool = False
    repeat_after_days: float = Field(30, gt=0)  # one alert per parcel and problem within this


class GroupCampaignJob(_Job):
    kind: Literal["group_campaign"]
    marketing: bool = True
    locale: str = ""  # the group's language; empty: shop.default_locale
    text: dict[str, str]  # locale -> markdown text for the group robot

    @field_validator("text")
    @classmethod
    def _some_text(cls, value: dict[str, str]) -> dict[str, str]:
        if not any(v.strip() for v in value.values()):
            raise ValueError("a campaign needs a text")
        return value


JobSpec = Annotated[
    SamplePickupJob | PaymentReminderJob | LogisticsAlertJob | GroupCampaignJob, Field(discriminator="kind")
]

DEFAULT_OPT_OUT = ("退订", "TD", "stop", "unsubscribe", "配信停止", "إلغاء الاشتراك")
DEFAULT_OPT_IN = ("订阅", "subscribe", "配信再開", "اشتراك")


class PushesConfig(_Spec):
    enabled: bool = True
    timezone: str = "Asia/Shanghai"  # cron expressions and group campaigns; shoppers of unknown zone
    locale_timezones: dict[str, str] = {"zh-CN": "Asia/Shanghai", "ja": "Asia/Tokyo", "ar": "Asia/Dubai"}
    marketing_per_day: int = Field(3, ge=0)
    quiet_hours: QuietHours | None = QuietHours()
    opt_out_words: tuple[str, ...] = DEFAULT_OPT_OUT
    opt_in_words: tuple[str, ...] = DEFAULT_OPT_IN
    contact_refresh_s: int = Field(300, ge=0)  # a turn rewrites a shopper's contact at most this often
    pickup_code_secret: str = ""
    stores_file: str = ""  # empty: the bundled demo stores (core/data/stores.yaml)
    location: LocationConfig = LocationConfig()
    logistics: LogisticsConfig = LogisticsConfig()
    misfire: Misfire = Misfire()
    channels: dict[str, ChannelRule] = {"wechat": ChannelRule(window_hours=48),
                                        "miniprogram": ChannelRule(window_hours=48)}
    jobs: tuple[JobSpec, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("locale_timezones")
    @classmethod
    def _zones(cls, value: dict[str, str]) -> dict[str, str]:
        for zone in value.values():
            check_zone(zone)
        return value

    @field_validator("jobs")
    @classmethod
    def _unique(cls, value: tuple[_Job, ...]) -> tuple[_Job, ...]:
        ids = [j.id for j in value]
        duplicated = {i for i in ids if ids.count(i) > 1}
        if duplicated:
            raise ValueError(f"job ids must be unique: {', '.join(sorted(duplicated))}")
        return value

    def job(self, job_id: str) -> SamplePickupJob | PaymentReminderJob | LogisticsAlertJob | GroupCampaignJob:
        for job in self.jobs:
            if job.id == job_id:
                return job
        raise KeyError(job_id)
