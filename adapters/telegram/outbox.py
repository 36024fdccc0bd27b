"""The outbound queue: Telegram's flood limits kept, order kept per chat, 429s honoured.

Telegram's limits (Bot API FAQ): about 1 message per second in one chat, 20 messages per minute in one
group, 30 messages per second overall. Each is kept as a sliding window, and the windows are kept in a
way that a server counting *arrivals* in the same windows never sees too many, whatever the network
delay: a message counts in a window from the moment its request leaves until `period` after its answer
came back (the answer comes back after the request arrived, so the client's count always covers the
server's). The price is one round trip per window; the gain is no 429 in the first place.

Per chat, one request is in flight at a time and messages leave in the order they were queued. Chats take
turns (round robin) when the overall limit is the bottleneck. A 429 that happens anyway blocks that chat
for its `retry_after`; network errors are retried with backoff; a chat that blocked the bot is dropped;
a photo Telegram refuses is replaced by its text fallback; a group upgraded to a supergroup is followed.

The queue lives in this process: replies are accepted at once (the turn does not wait for the limits),
and `close()` drains what is left, up to a deadline.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime as dt
import logging
import math
import time
import warnings
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBDeprecationWarning

from adapters.telegram.render import Outgoing

log = logging.getLogger("kefu.telegram")

MAX_ATTEMPTS = 4  # per message, for network errors and 5xx
RETRY_BASE_S = 0.5  # first retry after a network error; doubles each time
GROUP_PERIOD_S = 60.0
OVERALL_PERIOD_S = 1.0

Transmit = Callable[[int, Outgoing], Awaitable[None]]


def retry_seconds(exc: RetryAfter) -> float:
    """`retry_after` as seconds, whichever type PTB is set to return (int now, timedelta later)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def is_group(chat_id: int) -> bool:
    """Groups, supergroups and channels have negative ids; people have positive ones."""
    return chat_id < 0


class Window:
    """At most `limit` messages in any `period` seconds.

    An entry counts while its request is in flight and for `period` seconds after its answer came back.
    """

    __slots__ = ("_done", "in_flight", "limit", "period")

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.in_flight = 0
        self._done: list[float] = []  # answer times, sorted

    def _expire(self, now: float) -> None:
        cut = bisect.bisect_right(self._done, now - self.period)
        if cut:
            del self._done[:cut]

    def free_at(self, now: float) -> float:
        """The earliest time another message may leave (`inf`: when an answer comes back)."""
        self._expire(now)
        excess = self.in_flight + len(self._done) - self.limit + 1
        if excess <= 0:
            return now
        if excess > len(self._done):
            return math.inf
        return self._done[excess - 1] + self.period

    def start(self) -> None:
        self.in_flight += 1

    def finish(self, now: float) -> None:
        self.in_flight -= 1
        bisect.insort(self._done, now)

    def idle(self, now: float) -> bool:
        self._expire(now)
        return not self.in_flight and not self._done


class RateLimits:
    """The three windows (per chat, per group, overall) and the chats a 429 told us to leave alone."""

    def __init__(self, per_chat_per_second: float, per_group_per_minute: int, global_per_second: int) -> None:
        self.overall = Window(global_per_second, OVERALL_PERIOD_S)
        self._chat_period = 1.0 / per_chat_per_second
        self._group_limit = per_group_per_minute
        self._chats: dict[int, Window] = {}
        self._groups: dict[int, Window] = {}
        self._blocked: dict[int, float] = {}

    def _windows(self, chat_id: int) -> list[Window]:
        windows = [self.overall]
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = Window(1, self._chat_period)
        windows.append(chat)
        if is_group(chat_id):
            group = self._groups.get(chat_id)
            if group is None:
                group = self._groups[chat_id] = Window(self._group_limit, GROUP_PERIOD_S)
            windows.append(group)
        return windows

    def ready_at(self, chat_id: int, now: float) -> float:
        at = max(self.overall.free_at(now), self._blocked.get(chat_id, now))
        chat = self._chats.get(chat_id)
        if chat is not None:
            at = max(at, chat.free_at(now))
        group = self._groups.get(chat_id)
        if group is not None:
            at = max(at, group.free_at(now))
        return at

    def start(self, chat_id: int) -> None:
        for window in self._windows(chat_id):
            window.start()

    def finish(self, chat_id: int, now: float) -> None:
        for window in self._windows(chat_id):
            window.finish(now)

    def block(self, chat_id: int, until: float) -> None:
        self._blocked[chat_id] = max(until, self._blocked.get(chat_id, until))

    def forget_idle(self, now: float) -> None:
        """Drop the state of chats that have been quiet for a whole window."""
        for table in (self._chats, self._groups):
            for chat_id in [c for c, w in table.items() if w.idle(now)]:
                del table[chat_id]
        for chat_id in [c for c, until in self._blocked.items() if until <= now]:
            del self._blocked[chat_id]

    @property
    def tracked_chats(self) -> int:
        return len(self._chats)


@dataclass(slots=True)
class _Job:
    out: Outgoing
    attempts: int = 0


class Outbox:
    """Per-chat FIFO queues drained by one dispatcher task within `RateLimits`."""

    def __init__(
        self,
        transmit: Transmit,
        limits: RateLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_attempts: int = MAX_ATTEMPTS,
        retry_base_s: float = RETRY_BASE_S,
    ) -> None:
        self._transmit = transmit
        self.limits = limits
        self._clock = clock
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self._queues: OrderedDict[int, deque[_Job]] = OrderedDict()
        self._busy: set[int] = set()
        self._moved: dict[int, int] = {}  # group -> the supergroup it became
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._runner: asyncio.Task[None] | None = None
        self._next_cleanup = 0.0
        # counters, for logs and the benchmark
        self.sent = 0
        self.throttled = 0  # 429 answers
        self.retried = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def put(self, chat_id: int, out: Outgoing) -> None:
        chat_id = self._moved.get(chat_id, chat_id)
        self._queues.setdefault(chat_id, deque()).append(_Job(out))
        self._idle.clear()
        self._wake.set()
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="telegram-outbox")

    def migrate(self, old: int, new: int) -> None:
        """A group became a supergroup: what is queued for it (and what comes later) goes to the new id."""
        if old != new:
            self._moved[old] = new
            self._wake.set()

    async def flush(self, wait_s: float | None = None) -> bool:
        """Wait until everything queued has been sent (or given up); False if `wait_s` ran out first."""
        try:
            await asyncio.wait_for(self._idle.wait(), wait_s)
        except TimeoutError:
            return False
        return True

    async def close(self, drain_s: float) -> None:
        if not await self.flush(drain_s):
            log.warning("telegram: %d queued messages not sent at shutdown", self.pending)
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._runner = None

    # -- dispatching ----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock()
            wake_at = math.inf
            for chat_id in list(self._queues):
                if chat_id in self._busy:
                    continue
                target = self._moved.get(chat_id)
                if target is not None:
                    self._queues.setdefault(target, deque()).extend(self._queues.pop(chat_id))
                    wake_at = now
                    continue
                at = self.limits.ready_at(chat_id, now)
                if at <= now:
                    self._launch(chat_id)
                else:
                    wake_at = min(wake_at, at)
            if now >= self._next_cleanup:
                self.limits.forget_idle(now)
                self._next_cleanup = now + GROUP_PERIOD_S
            if wake_at <= now:
                continue
            timeout = None if wake_at == math.inf else wake_at - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _launch(self, chat_id: int) -> None:
        job = self._queues[chat_id][0]
        self._queues.move_to_end(chat_id)  # round robin
        self._busy.add(chat_id)
        self.limits.start(chat_id)
        task = asyncio.get_running_loop().create_task(self._deliver(chat_id, job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, chat_id: int, job: _Job) -> None:
        done, drop_chat = True, False
        try:
            await self._transmit(chat_id, job.out)
            self.sent += 1
        except RetryAfter as exc:
            self.throttled += 1
            done = False
            wait = retry_seconds(exc)
            self.limits.block(chat_id, self._clock() + wait)
            log.warning("telegram: 429 for chat %s, retrying in %.1f s", chat_id, wait)
        except ChatMigrated as exc:
            done = False
            self.migrate(chat_id, int(exc.new_chat_id))
            log.info("telegram: chat %s is now supergroup %s", chat_id, exc.new_chat_id)
        except BadRequest as exc:
            if job.out.fallback is not None:
                log.warning("telegram: %s refused for chat %s (%s); sending its text instead", job.out.method,
                            chat_id, exc.message)
                job.out, job.attempts, done = job.out.fallback, 0, False
            else:
                self._give_up(chat_id, job, exc)
        except Forbidden as exc:
            drop_chat = True
            self._give_up(chat_id, job, exc)
        except NetworkError as exc:  # includes TimedOut and 5xx; BadRequest is handled above
            job.attempts += 1
            if job.attempts >= self.max_attempts:
                self._give_up(chat_id, job, exc)
            else:
                done = False
                self.retried += 1
                delay = self.retry_base_s * 2 ** (job.attempts - 1)
                self.limits.block(chat_id, self._clock() + delay)
                log.info("telegram: %s to chat %s failed (%s); retry %d in %.1f s", job.out.method, chat_id,
                         exc.message, job.attempts, delay)
        except TelegramError as exc:
            self._give_up(chat_id, job, exc)
        except Exception as exc:
            log.exception("telegram: unexpected error sending to chat %s", chat_id)
            self._give_up(chat_id, job, exc)
        finally:
            self.limits.finish(chat_id, self._clock())
            self._busy.discard(chat_id)
            queue = self._queues.get(chat_id)
            if queue is not None:
                if drop_chat:
                    self.dropped += len(queue) - 1
                    queue.clear()
                elif done and queue and queue[0] is job:
                    queue.popleft()
                if not queue:
                    del self._queues[chat_id]
            if not self._queues and not self._busy:
                self._idle.set()
            self._wake.set()

    def _give_up(self, chat_id: int, job: _Job, exc: BaseException) -> None:
        self.dropped += 1
        reason = exc.message if isinstance(exc, TelegramError) else repr(exc)
        log.warning("telegram: %s to chat %s not sent: %s: %s", job.out.method, chat_id, type(exc).__name__,
                    reason)
