"""The LLM agent loop: the model answers with the shop's operations and skills as tools (core.tools).

    run = agent.start(ctx, messages, on_usage=..., hand_over=...)
    outcome = await run.stream()     # streamed delivery: replies that end the turn, or an AgentStream
    outcome = await run.complete()   # checked delivery (ja): replies that end the turn, or the final LlmResult

Each step sends the conversation and the tools; the model answers with text (the answer) or a tool call:
- one call at a time: `parallel_tool_calls` is false, and when several come anyway the first runs and the
  others are answered "not run";
- a read runs at once and its JSON result goes back as a `tool` message; refusals and errors go back too;
- a write is never run: its details are listed and kept pending (core.confirm.ask_to_confirm) and the turn ends
  with that question; the shopper's yes on the next turn runs it (core.confirm.settle_pending);
- after `max_steps` tool calls the turn ends with an honest answer and the offer of a human;
- every answer of the turn must end by the turn's deadline (`llm.turn_deadline_s` from the start), so
  a slow model cannot hold a shopper for `max_steps` times the answer's own limit.

The system prompt is the engine's (shop name, the locale pack's rules) plus the store policy and who the
signed-in shopper is. Tokens of the tool steps are reported through `on_usage`; the step whose text is the
answer is counted by its deliverer (core.engine), as for answers without tools.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.config import Config
from core.llm import LlmClient, LlmResult, LlmStream, ToolCall, Usage
from core.message import Button, Reply
from core.shaping import Shaper
from core.skills.base import SkillContext
from core.skills.orders import signed_in_user
from core.tool_runs import run_call
from core.tools import TOOLS, schemas

log = logging.getLogger("kefu.agent")

NOT_RUN = "Error: not run: make one tool call at a time; call it again if it is still needed"

TOOL_RULES = """\
# How to use the tools
Make at most one tool call at a time, and do not write to the shopper in the same message as a tool call.
Calling a write tool (cancel, modify, return, exchange, change an address) does not change anything: the shopper \
is shown the details and asked to answer yes or no, and the change runs only after their yes. So list nothing \
yourself and do not say it is done; call the tool once all the details are collected.
Tool results starting with "Error:" are refusals: explain them to the shopper, do not invent another way.
Answer in the shopper's language."""

SIGNED_IN = "The shopper is authenticated as user id {user_id}: do not ask them to authenticate again."
NOT_SIGNED_IN = ("The shopper is not authenticated yet: before anything about their account or orders, find their "
                 "user id by email, or by first name, last name and zip code.")

OnUsage = Callable[[Usage | None], None]
HandOver = Callable[[SkillContext], Awaitable[list[Reply]]]


def load_policy(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        log.warning("no store policy for the LLM at %s (%s): the tool rules alone go to the model", path, exc)
        return ""


class Agent:
    """One per engine: the client, the tools and the policy (read once, at start)."""

    def __init__(self, llm: LlmClient, policy: str, max_steps: int, turn_deadline_s: float = 120.0) -> None:
        self.llm = llm
        self.policy = policy
        self.max_steps = max_steps
        self.turn_deadline_s = turn_deadline_s
        self.tools = schemas(TOOLS)

    @classmethod
    def from_config(cls, config: Config, llm: LlmClient) -> Agent:
        return cls(llm, load_policy(config.resolve_path(config.llm.policy_file)), config.llm.max_tool_steps,
                   config.llm.turn_deadline_s)

    def system_prompt(self, ctx: SkillContext, base: str) -> str:
        user_id = signed_in_user(ctx)
        who = SIGNED_IN.format(user_id=user_id) if user_id else NOT_SIGNED_IN
        return "\n\n".join(part for part in (base, self.policy, TOOL_RULES, who) if part)

    def start(self, ctx: SkillContext, messages: list[dict[str, Any]], on_usage: OnUsage,
              hand_over: HandOver) -> AgentRun:
        """A turn's run on `messages` (the engine's: system prompt first, then the history)."""
        messages = [dict(m) for m in messages]
        if messages and messages[0]["role"] == "system":
            messages[0]["content"] = self.system_prompt(ctx, str(messages[0]["content"]))
        else:
            messages.insert(0, {"role": "system", "content": self.system_prompt(ctx, "")})
        return AgentRun(self, ctx, messages, on_usage, hand_over)


class AgentRun:
    """One turn of the loop; `messages` grows with the tool calls and their results."""

    def __init__(self, agent: Agent, ctx: SkillContext, messages: list[dict[str, Any]], on_usage: OnUsage,
                 hand_over: HandOver) -> None:
        self.agent = agent
        self.ctx = ctx
        self.messages = messages
        self.on_usage = on_usage
        self.hand_over = hand_over
        self.steps = 0
        # every answer of the turn ends by this loop time; tools run in between and are never cut off
        self.deadline = asyncio.get_running_loop().time() + agent.turn_deadline_s
        self.health = False  # a health product's facts were given: the answer carries the disclaimer

    def step_stream(self) -> LlmStream:
        return self.agent.llm.stream(self.messages, self.agent.tools, deadline=self.deadline)

    async def stream(self) -> list[Reply] | AgentStream:
        """Tool steps until the answer's text starts (streamed on by the AgentStream) or the turn ends."""
        while True:
            step = self.step_stream()
            first = await first_text(step)
            if first or not step.done or not step.result.tool_calls:
                return AgentStream(self, step, first)
            replies = await self.after_tool_step(step.result)
            if replies is not None:
                return replies

    async def complete(self) -> list[Reply] | LlmResult:
        """Tool steps until the model answers in text (the whole answer) or the turn ends."""
        while True:
            result = await self.agent.llm.complete(self.messages, self.agent.tools, deadline=self.deadline)
            if not result.tool_calls:
                return self.with_disclaimer(result)
            replies = await self.after_tool_step(result)
            if replies is not None:
                return replies

    async def after_tool_step(self, result: LlmResult) -> list[Reply] | None:
        """Run the step's first call; the replies that end the turn, or None to ask the model again."""
        self.on_usage(result.usage)
        if self.steps >= self.agent.max_steps:
            log.info("LLM tool step limit (%d) reached", self.agent.max_steps)
            return [step_limit_reply(self.ctx)]
        self.steps += 1
        first, *rest = result.tool_calls
        self.messages.append(result.assistant_message())
        outcome = run_call(self.ctx, first)
        self.messages.append(tool_message(first, outcome.content))
        self.messages.extend(tool_message(call, NOT_RUN) for call in rest)
        self.health = self.health or outcome.health
        if outcome.handoff:
            return await self.hand_over(self.ctx)
        return outcome.replies

    def missing_disclaimer(self, answer: str) -> str:
        """The health disclaimer when the answer used a health product's facts and lacks it, else ""."""
        pack = self.ctx.t.pack
        if not self.health or pack is None or not pack.health_disclaimer or pack.health_disclaimer in answer:
            return ""
        return pack.health_disclaimer

    def with_disclaimer(self, result: LlmResult) -> LlmResult:
        pack = self.ctx.t.pack
        if pack is None or not self.missing_disclaimer(result.text) or not result.choices:
            return result
        first = replace(result.choices[0], text=Shaper.with_disclaimer(pack, result.text))
        return replace(result, choices=[first, *result.choices[1:]])


def tool_message(call: ToolCall, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call.id, "content": content}


def step_limit_reply(ctx: SkillContext) -> Reply:
    t = ctx.t
    return Reply(text=t("Sorry, I couldn't finish that on my own. A human colleague can take it from here: "
                        "would you like one?"),
                 buttons=(Button(t("Talk to a human"), t("human please")),))


async def first_text(step: LlmStream) -> str:
    """The first text delta of a step, or "" once the step is done without text."""
    async for delta in step:
        return delta
    return ""


class AgentStream:
    """The answer's text deltas, like an `LlmStream`: `.text` at any time, `.result` (the answer's step) at the end.

    Should the model call a tool after starting to write (against the rules), the call runs and the loop goes on
    within the stream; a reply that ends the turn then arrives as text (its buttons are lost, a typed yes works).
    """

    def __init__(self, run: AgentRun, step: LlmStream, first: str) -> None:
        self._run = run
        self._step = step
        self._parts: list[str] = []
        self._result: LlmResult | None = None
        self._deltas = self._relay(first)

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def result(self) -> LlmResult:
        if self._result is None:
            raise RuntimeError("AgentStream.result is available only after the stream is exhausted")
        return self._result

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        delta = await anext(self._deltas)
        self._parts.append(delta)
        return delta

    async def _relay(self, first: str) -> AsyncIterator[str]:
        if first:
            yield first
        step, separate = self._step, False
        while True:
            async for delta in step:
                yield ("\n" + delta) if separate else delta
                separate = False
            result = step.result
            if not result.tool_calls:
                self._result = result
                if disclaimer := self._run.missing_disclaimer(self.text):
                    yield "\n\n" + disclaimer
                return
            replies = await self._run.after_tool_step(result)
            if replies is not None:
                self._result = LlmResult(choices=[], usage=None, model=result.model)
                text = "\n".join(r.text for r in replies if r.text)
                if text:
                    yield ("\n" if self._parts else "") + text
                return
            step, separate = self._run.step_stream(), bool(self._parts)
