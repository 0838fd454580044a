"""aos-a2a: a --silent message's delivery latency, and the --wake round trip.

A real daemon runs in this event loop (``aos.testing.temporary_daemon``: SQLite
under a short temporary ``AOS_HOME``, ``AOS_DEFAULT_SKILLS=aos-context,
aos-skill,aos-a2a``, so no web UI), its model a :class:`ScriptedLLM` (a thread of
this process) that answers every request at once. ``AOS_A2A_MAX_HOPS`` is set to
1000 in this process's environment while the daemon runs (the aos-a2a service
inherits it), so a long ping-pong is not stopped by the hop limit. Once the
aos-a2a service is ``running``:

(1) ``--silent`` delivery. The path an agent's ``a2a send`` takes, without its
    process: a :class:`Client` on ``agent.sock`` with an agent token (agent
    ``sender``, its session, the default agent scopes) calls ``skill.call
    {"skill": "aos-a2a", "method": "send", "params": {"to": "sink", "text",
    "mode": "silent"}}`` (``sink`` is a child of ``sender``, named, not
    numbered). Timed from the call until the ``a2a.message`` fact's
    ``history.append`` event for the sink's inbox session reaches an admin
    subscriber on ``aos.sock`` (the fact is committed before it is announced):
    p50 (target <= 5 ms) and p99; the skill.call round trip alone, no target.
    1000 sends after 50 (``--quick`` 100 after 10), sequential.

(2) ``--wake`` ping-pong, driven by the agents themselves: agent ``ping`` is
    dispatched once; the scripted model answers its dispatch with the bash call
    ``a2a send pong "ping" --wake`` (the skill's real command: a Python process
    that calls ``skill.call``) and, after the tool result, with a text; ``pong``
    (a child of ``ping``), woken in its "a2a inbox" session, answers with a text
    at once; that answer comes back to ``ping``'s session as the reply and
    dispatches it, whose model sends the next wake ... 100 round trips
    (``--quick`` 10). Every fact is timestamped as its ``history.append`` event
    arrives (an admin subscription on ``aos.sock``, this loop's clock).

    - ``wall / round trip``: from the first dispatch to the last reply, / N.
    - ``round trip``: between two consecutive ``tool.call`` facts of ``ping``
      (one per ``a2a send``), p50/p99.
    - ``model round trip``: afterwards, the same loop replays the ping-pong's
      model requests (their exact bodies, evenly sampled) through the kernel's
      own ``LLMClient`` against the scripted server: the request -> response
      time of an instant reply, p50. Each replay follows a run of the
      interpreter below, as model calls follow processes in the ping-pong
      (back to back, the scripted server stays hot and looks faster).
    - ``overhead excluding model time``: per round trip, round trip minus the
      model calls on its critical path x the model p50. Three model calls are
      made per round trip (``ping``'s send step, its step after the tool result,
      ``pong``'s answer); the second runs while ``pong`` works, so it is on the
      path only when ``ping``'s dispatch was still running when the reply came
      (the reply then waits in the service's queue): 2 or 3 per trip. This
      includes the ``a2a`` command's Python process, whose interpreter start
      alone is ~9 ms on this machine class.
    - ``the command's interpreter start``: ``run_bash`` of ``python -c pass``
      (the interpreter the ``a2a`` script runs on), p50, before each replayed
      request: the floor of any Python command an agent runs, whatever it does.
    - ``overhead excluding model time and the command's interpreter``: the
      overhead less that floor, once per trip: what aos-a2a, the SDK and the
      kernel add, as #6 leaves the command itself out of the kernel's
      overhead. Target p50 <= 20 ms.
    - the legs, from the facts (p50, no targets): ``ping``'s ``tool.call`` ->
      the message in ``pong``'s inbox (the command's process start, imports,
      connect, skill.call, until the append); delivered -> ``ping``'s
      ``tool.result`` (the command prints and exits); delivered -> ``pong``'s
      ``dispatch.started`` (the service's wake); ``pong``'s
      ``dispatch.finished`` -> the reply in ``ping``'s session (dispatch.after,
      the reply); the later of the reply and ``ping``'s ``dispatch.finished``
      -> ``ping``'s next ``dispatch.started`` (the wake, from the service's
      queue when the reply came first).

(3) ``--wake`` round trip without the command's process: agent ``x`` sends the
    wake to its child ``y`` through ``skill.call`` as in (1), ``y``'s model
    answers at once, and the round trip ends when the reply's fact reaches the
    subscriber (``x``'s reply dispatch is then waited for, untimed). Overhead =
    round trip - 1 model p50 (``y``'s answer), target p50 <= 20 ms. 100 round
    trips (``--quick`` 10).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _harness import (
    NS_PER_MS,
    Context,
    Result,
    Stopwatch,
    Target,
    latency_results,
    now_ns,
    percentile,
)
from aos_sdk import Client

from aos.bash import run_bash
from aos.daemon import Daemon
from aos.kernel import Kernel
from aos.principals import DEFAULT_AGENT_SCOPES, agent_principal
from aos.testing import Reply, ScriptedLLM, temporary_daemon

NAME = "a2a"
DESCRIPTION = (
    "aos-a2a: --silent delivery latency via skill.call; --wake ping-pong round trip "
    "and its overhead excluding model time"
)

SKILL = "aos-a2a"
MAX_HOPS = "1000"
SILENT_P50_MS = 5.0
WAKE_OVERHEAD_P50_MS = 20.0
REPLAY_SAMPLES = 60
START_TIMEOUT = 60.0
SETTLE_TIMEOUT = 30.0


# -- the scripted model --------------------------------------------------------------------
class Model:
    """Answers at once, deciding from the request; counts what it answered.

    Called in the scripted server's thread."""

    def __init__(self) -> None:
        self.phase = "idle"
        """``pingpong``, ``direct`` or ``probe`` (replays: always a text)."""
        self.trips = 0
        self.sent = 0
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.calls += 1
            last = body["messages"][-1]
            text = str(last.get("content") or "")
            if self.phase == "probe":
                return Reply.text("ok")
            if last["role"] == "tool":
                return Reply.text("sent")
            if "needs an answer" in text:
                return Reply.text("pong")
            if self.phase == "pingpong" and (
                text.startswith("Start") or "The reply to your message" in text
            ):
                if self.sent < self.trips:
                    self.sent += 1
                    return Reply.tool_call('a2a send pong "ping" --wake')
                return Reply.text("done")
            return Reply.text("ok")


# -- facts as they are appended ------------------------------------------------------------
@dataclass
class Seen:
    at_ns: int
    session_id: str
    fact: dict[str, Any]


@dataclass
class Recorder:
    """Every ``history.append`` event, stamped when it reaches this loop."""

    facts: list[Seen] = field(default_factory=list[Seen])
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def follow(self, client: Client) -> None:
        async for event in client.subscribe(topics=["history.append"]):
            data = event.data
            self.facts.append(Seen(now_ns(), data["session_id"], data["fact"]))
            self.changed.set()

    async def wait_for(self, check: Callable[[], bool], seconds: float) -> None:
        """Until ``check()`` is true, re-checked at every new fact."""
        async with asyncio.timeout(seconds):
            while not check():
                self.changed.clear()
                await self.changed.wait()

    def of(self, session_id: str, kind: str, since: int = 0) -> list[Seen]:
        return [
            s for s in self.facts[since:] if s.session_id == session_id and s.fact["kind"] == kind
        ]


# -- the daemon ----------------------------------------------------------------------------
def a2a_running(kernel: Kernel) -> bool:
    return kernel.services is not None and any(
        s["skill"] == SKILL and s["state"] == "running" for s in kernel.services.status()
    )


@contextlib.asynccontextmanager
async def a2a_daemon(ctx: Context, model: Model) -> AsyncIterator[tuple[Daemon, ScriptedLLM]]:
    previous = os.environ.get("AOS_A2A_MAX_HOPS")
    os.environ["AOS_A2A_MAX_HOPS"] = MAX_HOPS  # the service reads its environment
    project = Path(tempfile.mkdtemp(prefix="aosa2a-", dir="/tmp"))
    try:
        async with ScriptedLLM(default=model) as llm:
            ctx.progress("starting a daemon in this loop (aos-a2a, scripted model)")
            async with temporary_daemon(
                project,
                AOS_MODEL="m",
                OPENROUTER_BASE_URL=llm.base_url,
                AOS_DEFAULT_SKILLS="aos-context,aos-skill,aos-a2a",
            ) as daemon:
                kernel = daemon.kernel
                assert kernel is not None
                async with asyncio.timeout(START_TIMEOUT):
                    while not a2a_running(kernel):  # noqa: ASYNC110 - another process starts
                        await asyncio.sleep(0.01)
                yield daemon, llm
    finally:
        if previous is None:
            os.environ.pop("AOS_A2A_MAX_HOPS", None)
        else:
            os.environ["AOS_A2A_MAX_HOPS"] = previous
        shutil.rmtree(project, ignore_errors=True)


async def new_agent(admin: Client, name: str, parent: str | None = None) -> str:
    params: dict[str, Any] = {"name": name}
    if parent is not None:
        params["parent"] = parent
    return (await admin.call("agent.create", params))["agent"]["id"]


def agent_client(daemon: Daemon, agent_id: str, session_id: str) -> Client:
    """What an agent's bash holds: agent.sock and a token for its session."""
    assert daemon.kernel is not None
    principal = agent_principal(agent_id, session_id, frozenset(DEFAULT_AGENT_SCOPES))
    return Client(daemon.paths.agent_socket, token=daemon.kernel.tokens.issue(principal))


def send_params(to: str, text: str, mode: str) -> dict[str, Any]:
    return {"skill": SKILL, "method": "send", "params": {"to": to, "text": text, "mode": mode}}


def ms(ns: float) -> float:
    return ns / NS_PER_MS


def p50_result(
    case: str, figure: str, samples_ns: list[int], target_ms: float | None = None, note: str = ""
) -> Result:
    return Result(
        case=case,
        figure=f"{figure} p50",
        value=ms(percentile(samples_ns, 50)),
        unit="ms",
        target=None if target_ms is None else Target("<=", target_ms),
        samples=len(samples_ns),
        note=note,
    )


# -- the benchmark -------------------------------------------------------------------------
async def run(ctx: Context) -> list[Result]:
    model = Model()
    results: list[Result] = []
    async with a2a_daemon(ctx, model) as (daemon, llm):
        recorder = Recorder()
        async with (
            Client(daemon.paths.control_socket, token="") as admin,
            Client(daemon.paths.control_socket, token="") as events,
        ):
            follower = asyncio.get_running_loop().create_task(recorder.follow(events))
            try:
                await asyncio.sleep(0.05)  # the subscription is in place
                results += await _silent(ctx, daemon, admin, recorder)
                pingpong, model_ns = await _ping_pong(ctx, daemon, admin, recorder, model, llm)
                results += pingpong
                results += await _direct(ctx, daemon, admin, recorder, model, model_ns)
            finally:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
    return results


async def _silent(ctx: Context, daemon: Daemon, admin: Client, recorder: Recorder) -> list[Result]:
    sender = await new_agent(admin, "sender")
    await new_agent(admin, "sink", parent=sender)
    session = (await admin.call("session.create", {"agent_id": sender}))["id"]
    n, warmup = ctx.scale(1000, 100), ctx.scale(50, 10)
    ctx.progress(f"--silent: {n} sends after {warmup} through skill.call on agent.sock")
    visible: list[int] = []
    returned: list[int] = []
    async with agent_client(daemon, sender, session) as client:
        for i in range(warmup + n):
            mark = len(recorder.facts)
            start = now_ns()
            sent = await client.call("skill.call", send_params("sink", f"fyi {i}", "silent"))
            back = now_ns()

            def arrived(mark: int = mark, sent: dict[str, Any] = sent) -> list[Seen]:
                return [
                    s
                    for s in recorder.of(sent["session_id"], "a2a.message", mark)
                    if s.fact["message_id"] == sent["message_id"]
                ]

            await recorder.wait_for(lambda: bool(arrived()), SETTLE_TIMEOUT)
            if i >= warmup:
                visible.append(arrived()[0].at_ns - start)
                returned.append(back - start)
    case = "--silent, skill.call"
    return [
        *latency_results(
            case,
            "send -> fact in target history",
            visible,
            targets_ms={"p50": SILENT_P50_MS},
        ),
        p50_result(case, "skill.call send round trip", returned),
    ]


async def _ping_pong(
    ctx: Context,
    daemon: Daemon,
    admin: Client,
    recorder: Recorder,
    model: Model,
    llm: ScriptedLLM,
) -> tuple[list[Result], int]:
    trips = ctx.scale(100, 10)
    ping = await new_agent(admin, "ping")
    pong = await new_agent(admin, "pong", parent=ping)
    session = (await admin.call("session.create", {"agent_id": ping}))["id"]
    model.trips, model.sent, model.phase = trips, 0, "pingpong"
    first_request = len(llm.requests)
    calls_before = model.calls
    ctx.progress(f"--wake ping-pong: {trips} round trips, the agents' own `a2a send`")
    mark = len(recorder.facts)
    with Stopwatch() as wall:
        await admin.call("session.dispatch", {"id": session, "message": "Start", "wait": False})
        await recorder.wait_for(
            lambda: len(replies_in(recorder, session, mark)) >= trips, 60 + trips * 3.0
        )
    # ping's last dispatch (answered "done") ends the chain
    await recorder.wait_for(
        lambda: (
            len(recorder.of(session, "dispatch.finished", mark))
            >= len(recorder.of(session, "dispatch.started", mark))
        ),
        SETTLE_TIMEOUT,
    )
    model_calls = model.calls - calls_before
    bodies = [r.body for r in llm.requests[first_request:]]

    # The model alone: the ping-pong's requests again, through the kernel's
    # LLMClient; and the command's own floor: bash starting the interpreter the
    # a2a script runs on. Alternated, as in the ping-pong (a process, then the
    # model): back to back, the model's server stays hot and looks faster.
    model.phase = "probe"
    kernel = daemon.kernel
    assert kernel is not None
    step = max(1, len(bodies) // REPLAY_SAMPLES)
    replayed: list[int] = []
    interpreter: list[int] = []
    for body in bodies[::step]:
        start = now_ns()
        done = await run_bash(
            f"exec {shlex.quote(sys.executable)} -c pass",
            spawner=kernel.sandboxes.spawner_for(str(daemon.paths.service_dir)),
            cwd=str(daemon.paths.service_dir),
            env=dict(os.environ),
            time_limit=30,
            output_cap=1024,
        )
        if done.exit_code != 0:
            raise RuntimeError(f"{sys.executable} -c pass exited {done.exit_code}")
        interpreter.append(now_ns() - start)
        start = now_ns()
        await kernel.llm.complete(
            model="m", messages=body["messages"], tools=body.get("tools") or None
        )
        replayed.append(now_ns() - start)
    model_ns = int(percentile(replayed, 50))
    interpreter_ns = int(percentile(interpreter, 50))

    calls = recorder.of(session, "tool.call", mark)
    replies = replies_in(recorder, session, mark)
    ping_started = recorder.of(session, "dispatch.started", mark)
    ping_finished = recorder.of(session, "dispatch.finished", mark)
    inbox = next(
        s.session_id
        for s in recorder.facts[mark:]
        if s.fact["kind"] == "a2a.message" and s.fact["to_agent"] == pong
    )
    delivered = recorder.of(inbox, "a2a.message", mark)
    pong_started = recorder.of(inbox, "dispatch.started", mark)
    pong_finished = recorder.of(inbox, "dispatch.finished", mark)
    if not (
        len(calls) == len(replies) == len(delivered) == len(pong_started) == trips
        and len(pong_finished) == trips
        and len(ping_started) == len(ping_finished) == trips + 1
    ):
        raise RuntimeError(
            f"the ping-pong did not run as scripted: {len(calls)} sends, {len(delivered)} "
            f"delivered, {len(pong_started)} pong dispatches, {len(replies)} replies, "
            f"{len(ping_started)} ping dispatches for {trips} round trips"
        )

    round_trips: list[int] = []
    overheads: list[int] = []
    on_path: list[int] = []
    for k in range(trips - 1):
        sample = calls[k + 1].at_ns - calls[k].at_ns
        # ping's dispatch k (the one that sent k) still running when reply k came:
        # its step after the tool result is on the path too
        queued = ping_finished[k].at_ns > replies[k].at_ns
        path_calls = 3 if queued else 2
        round_trips.append(sample)
        overheads.append(sample - path_calls * model_ns)
        on_path.append(path_calls)

    def legs(ends: list[Seen], starts: list[Seen]) -> list[int]:
        return [e.at_ns - s.at_ns for s, e in zip(starts, ends, strict=True)]

    results = recorder.of(session, "tool.result", mark)
    woken = [  # the reply is there and ping's dispatch over -> ping dispatched again
        ping_started[k + 1].at_ns - max(replies[k].at_ns, ping_finished[k].at_ns)
        for k in range(trips)
    ]

    case = "--wake ping-pong, agents' a2a"
    queued_share = sum(1 for c in on_path if c == 3) / len(on_path)
    return [
        Result(
            case=case,
            figure="wall / round trip",
            value=ms(wall.elapsed_ns / trips),
            unit="ms",
            samples=trips,
        ),
        *latency_results(case, "round trip", round_trips),
        Result(
            case=case,
            figure="model calls / round trip",
            value=model_calls / trips,
            unit="calls",
            samples=trips,
            note=f"on the critical path: mean {sum(on_path) / len(on_path):.2f}; "
            f"reply queued behind the sender's dispatch in {queued_share:.0%} of trips",
        ),
        p50_result(case, "model round trip (replayed)", replayed),
        *latency_results(
            case,
            "overhead excluding model time",
            overheads,
            note="round trip - model calls on its critical path x model p50",
        ),
        p50_result(
            case,
            "the command's interpreter start (bash -> python -c pass)",
            interpreter,
            note="the floor of any Python command an agent runs; a2a's process is one per trip",
        ),
        *latency_results(
            case,
            "overhead excluding model time and the command's interpreter",
            [o - interpreter_ns for o in overheads],
            targets_ms={"p50": WAKE_OVERHEAD_P50_MS},
            note="as above, less the interpreter start p50: what aos-a2a and the kernel add "
            "(as #6 leaves the command itself out of the kernel's overhead)",
        ),
        p50_result(case, "leg: tool.call -> delivered (a2a process)", legs(delivered, calls)),
        p50_result(case, "leg: delivered -> sender tool.result", legs(results, delivered)),
        p50_result(
            case, "leg: delivered -> target dispatch.started", legs(pong_started, delivered)
        ),
        p50_result(case, "leg: target dispatch.finished -> reply", legs(replies, pong_finished)),
        p50_result(case, "leg: reply and sender idle -> dispatch.started", woken),
    ], model_ns


def replies_in(recorder: Recorder, session_id: str, mark: int) -> list[Seen]:
    return [s for s in recorder.of(session_id, "a2a.message", mark) if s.fact.get("reply_to")]


async def _direct(
    ctx: Context,
    daemon: Daemon,
    admin: Client,
    recorder: Recorder,
    model: Model,
    model_ns: int,
) -> list[Result]:
    trips, warmup = ctx.scale(100, 10), ctx.scale(5, 2)
    x = await new_agent(admin, "x")
    await new_agent(admin, "y", parent=x)
    session = (await admin.call("session.create", {"agent_id": x}))["id"]
    model.phase = "direct"
    ctx.progress(f"--wake through skill.call: {trips} round trips after {warmup}")
    samples: list[int] = []
    async with agent_client(daemon, x, session) as client:
        for i in range(warmup + trips):
            mark = len(recorder.facts)
            start = now_ns()
            sent = await client.call("skill.call", send_params("y", f"ping {i}", "wake"))

            def reply(mark: int = mark, sent: dict[str, Any] = sent) -> list[Seen]:
                return [
                    s
                    for s in replies_in(recorder, session, mark)
                    if s.fact["reply_to"] == sent["message_id"]
                ]

            await recorder.wait_for(lambda: bool(reply()), SETTLE_TIMEOUT)
            if i >= warmup:
                samples.append(reply()[0].at_ns - start)
            # x's reply dispatch answers at once; let it end before the next send
            await recorder.wait_for(
                lambda mark=mark: bool(recorder.of(session, "dispatch.finished", mark)),
                SETTLE_TIMEOUT,
            )
    case = "--wake, skill.call"
    return [
        *latency_results(case, "round trip (send -> reply fact)", samples),
        *latency_results(
            case,
            "overhead excluding model time",
            [s - model_ns for s in samples],
            targets_ms={"p50": WAKE_OVERHEAD_P50_MS},
            note="round trip - 1 model p50 (the target's answer)",
        ),
    ]
