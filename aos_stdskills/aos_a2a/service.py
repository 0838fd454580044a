"""aos-a2a's service face: delivery, policy and the reply protocol.

Agents call the ``send``, ``inbox`` and ``agents`` methods (``skill.call``) with
their own token; the kernel tells this service who calls. Delivery is an
``a2a.message`` fact appended to the target's session before ``send`` returns
(acknowledged means recorded). ``--notify`` and ``--wake`` dispatch the target
(in a task of this service: ``session.dispatch`` answers with the outcome from
whichever node of a cluster ran it); for ``--wake`` its final answer goes back
to the sender's session as a reply linked by ``reply_to``, and an idle sender
is dispatched to handle it. Messages for a busy session wait until its dispatch
ends (``dispatch.after`` here, else a retry). Nothing blocks, so agents waking
each other cannot deadlock; the hop count stops ping-pong. Everything it needs to resume after a restart is in the
histories (``start`` completes wakes whose target dispatch was cut by a crash).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections import defaultdict
from collections.abc import Coroutine
from typing import Any

from aos_sdk import MethodError, SyscallFailed, define_service, syscall

SKILL = "aos-a2a"
logger = logging.getLogger("aos-a2a")
INBOX_TITLE = "a2a inbox"
REPLY_WAKE_MODE = "notify"
"""A reply starts an idle sender but expects no reply back."""


class Policy:
    def __init__(self, metadata: dict[str, str]) -> None:
        self.policy = os.environ.get("AOS_A2A_POLICY", metadata.get("policy", "same-root"))
        self.max_hops = int(os.environ.get("AOS_A2A_MAX_HOPS", metadata.get("max-hops", "8")))
        self.max_bytes = int(
            os.environ.get("AOS_A2A_MAX_BYTES", metadata.get("max-bytes", "16384"))
        )


class State:
    """What this service keeps in memory; the histories are the truth."""

    def __init__(self) -> None:
        self.policy = Policy({})
        self.hops: dict[str, int] = {}
        """session id -> hop count of the message its running dispatch handles."""
        self.answering: dict[str, list[dict[str, Any]]] = {}
        """session id -> wake messages the dispatch this service runs on it answers."""
        self.queued: dict[str, list[dict[str, Any]]] = defaultdict(list)
        """session id -> messages that wait for the session to be free."""
        self.lock = asyncio.Lock()
        self.tasks: set[asyncio.Task[None]] = set()
        """Wakes under way (started after ``send`` returned)."""
        self.retrying: set[str] = set()
        """Sessions whose waiting messages are tried again after a delay."""
        self.policy_read = asyncio.Event()
        """Methods wait for the SKILL.md policy before deciding anything."""
        self.ready = asyncio.Event()


state = State()


def new_message_id() -> str:
    return f"msg_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(4)}"


async def agent(ref: str) -> dict[str, Any]:
    """An active agent by id or name."""
    try:
        return (await syscall("agent.get", {"id": ref}))["agent"]
    except SyscallFailed as exc:
        if exc.code != "not_found":
            raise
    for found in await syscall("agent.list", {"status": "active"}):
        if found["name"] == ref:
            return found
    raise MethodError("not_found", f"no agent named or numbered {ref!r} (see `a2a agents`)")


async def root_of(agent: dict[str, Any]) -> str:
    """The root of an agent's tree, from its record (an ``agent.get`` per ancestor)."""
    current = agent
    while current["parent"] is not None:
        current = (await syscall("agent.get", {"id": current["parent"]}))["agent"]
    return current["id"]


async def allowed(sender: dict[str, Any], target: dict[str, Any]) -> bool:
    if state.policy.policy == "any":
        return True
    return await root_of(sender) == await root_of(target)


async def inbox_session(agent_id: str) -> str:
    for session in await syscall("session.list", {"agent_id": agent_id}):
        if session["title"] == INBOX_TITLE and session["status"] != "archived":
            return session["id"]
    return (await syscall("session.create", {"agent_id": agent_id, "title": INBOX_TITLE}))["id"]


async def deliver(session_id: str, message: dict[str, Any]) -> None:
    await syscall("session.append", {"id": session_id, "fact": {"kind": "a2a.message", **message}})


def dispatch_text(messages: list[dict[str, Any]], names: dict[str, str]) -> str:
    parts = []
    for m in messages:
        sender = names.get(m["from_agent"], m["from_agent"])
        if m.get("reply_to"):
            parts.append(
                f"The reply to your message {m['reply_to']} arrived from {sender} ({m['message_id']})."
            )
        elif m["mode"] == "wake":
            parts.append(
                f"Message {m['message_id']} from {sender} needs an answer: handle it, and your "
                "final answer is sent back to them as the reply."
            )
        else:
            parts.append(
                f"Message {m['message_id']} from {sender}: handle it (no reply is expected)."
            )
    return " ".join(parts) + " The messages are in your history."


def spawn(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


async def wake(session_id: str, messages: list[dict[str, Any]]) -> None:
    """Dispatch a session to handle messages, or queue them while this service's
    dispatch of it runs (called under the lock)."""
    if session_id in state.answering:
        state.queued[session_id].extend(messages)
        return
    state.answering[session_id] = [m for m in messages if m["mode"] == "wake"]
    state.hops[session_id] = max(m["hops"] for m in messages)
    spawn(run_wake(session_id, messages))


async def run_wake(session_id: str, messages: list[dict[str, Any]]) -> None:
    """The dispatch, to its end: the answer goes back to the senders of wakes; a
    busy session keeps the messages for later; a refusal is told to the senders."""
    names = {m["from_agent"]: m.get("from_name", m["from_agent"]) for m in messages}
    params = {"id": session_id, "message": dispatch_text(messages, names)}
    try:
        outcome = await syscall("session.dispatch", params)
    except SyscallFailed as exc:
        async with state.lock:
            state.answering.pop(session_id, None)
            state.hops.pop(session_id, None)
            if exc.code == "conflict":  # its own dispatch runs: they wait for its end
                state.queued[session_id][:0] = messages
                if session_id not in state.retrying:
                    state.retrying.add(session_id)
                    spawn(retry(session_id))
                return
        await refused(messages, exc)
        return
    except Exception:
        logger.exception("the dispatch of %s for a2a messages failed", session_id)
        outcome = {"status": "failed", "error": "aos-a2a lost the dispatch's outcome"}
    async with state.lock:
        await ended(session_id, outcome)


async def ended(session_id: str, outcome: dict[str, Any]) -> None:
    """This service's dispatch of a session ended: reply, then the next messages."""
    answering = state.answering.pop(session_id, [])
    state.hops.pop(session_id, None)
    if outcome["status"] == "completed":
        answer = outcome.get("answer") or ""
    else:
        answer = f"[{outcome['status']}] {outcome.get('error') or 'no answer'}"
    for message in answering:
        await reply(message, session_id, answer)
    queued = state.queued.pop(session_id, [])
    if queued:
        await wake(session_id, queued)


async def retry(session_id: str) -> None:
    """Messages for a session busy with a dispatch not started here (perhaps on
    another node, whose ``dispatch.after`` this service does not hear): tried
    again after 0.5, 1, 2 and then every 5 s until they go."""
    delay = 0.5
    try:
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            async with state.lock:
                if session_id in state.answering:  # started meanwhile (dispatch.after)
                    return
                queued = state.queued.pop(session_id, [])
                if not queued:
                    return
                await wake(session_id, queued)
                return  # a new conflict starts a new retry
    finally:
        state.retrying.discard(session_id)


async def refused(messages: list[dict[str, Any]], exc: SyscallFailed) -> None:
    """The target could not be started: each sender learns why in its own history."""
    for message in messages:
        sender_session = message.get("from_session")
        if not sender_session or message["from_agent"] == SKILL:
            continue
        try:
            target = (await syscall("agent.get", {"id": message["to_agent"]}))["agent"]["name"]
            await deliver(
                sender_session,
                {
                    "message_id": new_message_id(),
                    "from_agent": SKILL,
                    "to_agent": message["from_agent"],
                    "mode": "silent",
                    "text": f"message {message['message_id']} was delivered to {target}, "
                    f"but {target} could not be started: {exc.message}",
                    "hops": message["hops"],
                },
            )
        except SyscallFailed as failed:
            logger.warning("could not tell %s: %s", sender_session, failed)


async def send(caller: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    await state.policy_read.wait()
    sender_id, sender_session = caller.get("agent_id"), caller.get("session_id")
    if sender_id is None:
        raise MethodError("denied", "a2a send is for agents: call it from an agent's bash")
    mode = params.get("mode")
    if mode not in ("silent", "notify", "wake"):
        raise MethodError("invalid", "mode must be silent, notify or wake")
    text = str(params.get("text") or "")
    size = len(text.encode())
    if size > state.policy.max_bytes:
        raise MethodError(
            "invalid", f"the message is {size} bytes; the limit is {state.policy.max_bytes}"
        )
    target = await agent(str(params.get("to") or ""))
    sender = (await syscall("agent.get", {"id": sender_id}))["agent"]
    if not await allowed(sender, target):
        raise MethodError(
            "denied",
            f"{sender['name']} may not message {target['name']}: they are not in the same agent "
            f"tree (a2a policy {state.policy.policy})",
        )
    hops = state.hops.get(sender_session or "", 0) + 1
    if hops > state.policy.max_hops:
        if sender_session:
            await deliver(
                sender_session,
                {
                    "message_id": new_message_id(),
                    "from_agent": SKILL,
                    "to_agent": sender_id,
                    "mode": "silent",
                    "text": f"hop limit reached: the message to {target['name']} was not sent "
                    f"(it would be hop {hops} of at most {state.policy.max_hops})",
                    "hops": hops,
                },
            )
        raise MethodError(
            "denied",
            f"hop limit reached ({state.policy.max_hops}): agents have been waking each other; "
            "answer without messaging",
        )
    session_id = params.get("session") or await inbox_session(target["id"])
    if params.get("session"):
        owner = (await syscall("session.get", {"id": session_id}))["agent_id"]
        if owner != target["id"]:
            raise MethodError("invalid", f"session {session_id} is not {target['name']}'s")
    message = {
        "message_id": new_message_id(),
        "from_agent": sender_id,
        "from_session": sender_session,
        "to_agent": target["id"],
        "mode": mode,
        "text": text,
        "hops": hops,
    }
    async with state.lock:
        await deliver(session_id, message)  # acknowledged = recorded
    if mode != "silent":  # the sender does not wait for the target to start
        async with state.lock:
            await wake(session_id, [{**message, "from_name": sender["name"]}])
    return {
        "message_id": message["message_id"],
        "to": target["id"],
        "to_name": target["name"],
        "session_id": session_id,
        "mode": mode,
        "hops": hops,
    }


async def replied(message: dict[str, Any]) -> bool:
    if not message.get("from_session"):
        return True
    history = await syscall("session.history", {"id": message["from_session"]})
    return any(
        h["fact"]["kind"] == "a2a.message" and h["fact"].get("reply_to") == message["message_id"]
        for h in history
    )


async def reply(message: dict[str, Any], session_id: str, answer: str) -> None:
    """Send the target's answer back to the sender's session. Once: a message is
    answered when the dispatch this service started for it ends, and after a
    restart only if the sender's history holds no reply yet (``start``)."""
    back = {
        "message_id": new_message_id(),
        "from_agent": message["to_agent"],
        "from_session": session_id,
        "to_agent": message["from_agent"],
        "mode": REPLY_WAKE_MODE,
        "text": answer,
        "reply_to": message["message_id"],
        "hops": message["hops"] + 1,
    }
    await deliver(message["from_session"], back)
    target = (await syscall("agent.get", {"id": message["to_agent"]}))["agent"]
    await wake(message["from_session"], [{**back, "from_name": target["name"]}])


async def dispatch_after(event: dict[str, Any]) -> None:
    """A dispatch of a session with waiting messages ended on this node (not one
    this service runs: its end comes back in ``run_wake``): they go now."""
    session_id = event["session_id"]
    async with state.lock:
        if session_id not in state.answering and state.queued.get(session_id):
            await wake(session_id, state.queued.pop(session_id))


async def inbox(caller: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    agent_id = caller.get("agent_id")
    if agent_id is None:
        raise MethodError("denied", "a2a inbox is for agents")
    sessions = {await inbox_session(agent_id)}
    if caller.get("session_id"):
        sessions.add(caller["session_id"])
    names: dict[str, str] = {}
    found = []
    for session_id in sessions:
        for h in await syscall("session.history", {"id": session_id}):
            fact = h["fact"]
            if fact["kind"] == "a2a.message" and fact["to_agent"] == agent_id:
                sender = fact["from_agent"]
                if sender not in names:
                    try:
                        names[sender] = (await syscall("agent.get", {"id": sender}))["agent"][
                            "name"
                        ]
                    except SyscallFailed:
                        names[sender] = sender
                found.append({**fact, "from_name": names[sender], "seq": h["seq"], "ts": h["ts"]})
    return sorted(found, key=lambda m: m["ts"])


async def agents(caller: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    agent_id = caller.get("agent_id")
    if agent_id is None:
        raise MethodError("denied", "a2a agents is for agents")
    everyone = await syscall("agent.list", {"status": "active"})
    me = next((a for a in everyone if a["id"] == agent_id), None)
    if me is None:
        raise MethodError("not_found", f"agent {agent_id} is not active")
    return [
        {"id": a["id"], "name": a["name"], "parent": a["parent"]}
        for a in everyone
        if a["id"] != agent_id and await allowed(me, a)
    ]


async def start() -> None:
    """Read the policy; finish wakes a crash cut short (their reply, once)."""
    detail = await syscall("skill.get", {"name": SKILL})
    state.policy = Policy(detail.get("metadata") or {})
    state.policy_read.set()
    # Under the lock: a message sent meanwhile is delivered after the scan, so it
    # is answered by its own wake, never also by this one.
    async with state.lock:
        for session in await syscall("session.list", {}):
            if session["title"] != INBOX_TITLE or session["status"] != "idle":
                continue
            history = await syscall("session.history", {"id": session["id"]})
            pending = [
                h["fact"]
                for h in history
                if h["fact"]["kind"] == "a2a.message" and h["fact"]["mode"] == "wake"
            ]
            unanswered = [m for m in pending if not await replied(m)]
            if unanswered:  # handled again: a dispatch's answer is never guessed from history
                await wake(session["id"], unanswered)
    state.ready.set()


@define_service
def service() -> dict[str, Any]:
    return {
        "hooks": {"dispatch.after": dispatch_after},
        "methods": {"send": send, "inbox": inbox, "agents": agents},
        "start": start,
    }
