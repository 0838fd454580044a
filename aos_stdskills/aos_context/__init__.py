"""aos-context: SessionHistory -> SessionContext (the ``session.assemble`` provider).

Incremental: per session it keeps the messages built so far and converts only
the facts appended since; a ``rebuild`` (or a history it does not recognise)
starts over. Compaction is proposed, not performed: the kernel records the
``context.compacted`` fact and asks again.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aos import CHARS_PER_TOKEN, hookimpl

SYSTEM = """You are an agent running on AgentOS. You work by running bash commands with \
the `bash` tool: each call runs in your workspace and returns the command's output and \
exit code. Inspect before you change things, check the results of your commands, and keep \
going until the task is done. When you are done, reply with your answer and no tool call."""
COMPACT_AT = 0.9
"""Share of the budget past which older turns are compacted."""
KEEP_TURNS = 4
"""User turns kept verbatim when compacting."""
CACHE_SESSIONS = 256


def estimate_tokens(message: Mapping[str, Any]) -> int:
    size = len(str(message.get("content") or ""))
    for call in message.get("tool_calls") or ():
        size += len(call["function"]["arguments"])
    return size // CHARS_PER_TOKEN + 4


@dataclass
class _Entry:
    seq: int
    message: dict[str, Any]
    tokens: int


@dataclass
class _State:
    processed: int = 0
    """How many facts of the history have been converted."""
    last_seq: int = 0
    entries: list[_Entry] = field(default_factory=list)
    tokens: int = 0
    summary: str | None = None
    summary_through: int = 0
    loaded: dict[str, str] = field(default_factory=dict)
    """Skills loaded in the session: name -> body."""
    waiting: list[_Entry] = field(default_factory=list)
    """Messages that arrived while tool calls await their results."""
    open_calls: dict[int, str] = field(default_factory=dict)
    """The last reply's calls still without a result: index -> the id sent."""

    def answer(self, fact: Mapping[str, Any]) -> str | None:
        """The id, as sent, of the call a ``tool.result`` answers (None: no open call).
        By index: providers reuse ids across replies, and even within one."""
        index = fact.get("index")
        if index is None:  # recorded before results had an index
            index = next(
                (i for i, sent in self.open_calls.items() if sent == fact["call_id"]), None
            )
        return self.open_calls.pop(index, None) if index is not None else None

    def add(self, entry: _Entry) -> None:
        if self.open_calls and entry.message["role"] != "tool":
            self.waiting.append(entry)  # never between tool calls and their results
            return
        self.entries.append(entry)
        self.tokens += entry.tokens
        if entry.message["role"] == "tool" and not self.open_calls:
            for waiting in self.waiting:
                self.entries.append(waiting)
                self.tokens += waiting.tokens
            self.waiting.clear()

    def compact(self, through_seq: int, summary: str) -> None:
        kept = [e for e in self.entries if e.seq > through_seq]
        self.entries = kept
        self.tokens = sum(e.tokens for e in kept)
        self.summary, self.summary_through = summary, through_seq


_sessions: OrderedDict[str, _State] = OrderedDict()


def _tool_content(fact: Mapping[str, Any]) -> str:
    status = fact.get("status", "ok")
    output = str(fact.get("output", ""))
    if status in ("ok", "error") and fact.get("exit_code") is not None:
        return f"{output}\n[exit code {fact['exit_code']}]"
    return output if status == "ok" else f"{output}\n[{status}]"


def _convert(state: _State, seq: int, fact: Mapping[str, Any]) -> None:
    kind = fact["kind"]
    if kind == "message.user":
        message: dict[str, Any] = {"role": "user", "content": fact["text"]}
    elif kind == "message.assistant":
        if fact.get("incomplete"):  # a stream that broke off: its retry, if any, follows
            return
        message = {"role": "assistant", "content": fact.get("text") or None}
        if fact.get("reasoning_details"):  # signed reasoning continues (OpenRouter)
            message["reasoning_details"] = fact["reasoning_details"]
        calls = fact.get("tool_calls") or []
        if calls:
            ids = _sent_ids(calls)
            message["tool_calls"] = [
                {
                    "id": sent,
                    "type": "function",
                    "function": {
                        "name": "bash",
                        "arguments": json.dumps(
                            {"command": call["command"]}
                            | ({"timeout": call["timeout"]} if call.get("timeout") else {})
                        ),
                    },
                }
                for call, sent in zip(calls, ids, strict=True)
            ]
            state.add(_Entry(seq, message, estimate_tokens(message)))
            state.open_calls = dict(enumerate(ids))
            return
    elif kind == "tool.result":
        sent = state.answer(fact)
        if sent is None:  # no call of the last reply is waiting for it
            return
        message = {"role": "tool", "tool_call_id": sent, "content": _tool_content(fact)}
    elif kind == "a2a.message":
        reply = f", replying to {fact['reply_to']}" if fact.get("reply_to") else ""
        message = {
            "role": "user",
            "content": f"[message {fact['message_id']} from agent {fact['from_agent']} "
            f"({fact['mode']}{reply})]\n{fact['text']}",
        }
    elif kind == "skill.loaded":
        state.loaded[fact["skill"]] = fact.get("body", "")
        return
    elif kind == "mcp.call":  # a record: the `mcp call` command's output is the tool result
        return
    elif kind == "skill.unloaded":
        state.loaded.pop(fact["skill"], None)
        return
    elif kind == "context.compacted":
        state.compact(int(fact["through_seq"]), str(fact["summary"]))
        return
    elif kind in ("dispatch.started", "dispatch.finished"):
        # A dispatch that ended without a result for some call (it was cut off):
        # the model must still see every call answered before anything else.
        for index in sorted(state.open_calls):
            missing = {
                "role": "tool",
                "tool_call_id": state.open_calls.pop(index),
                "content": "[no result was recorded]",
            }
            state.add(_Entry(seq, missing, estimate_tokens(missing)))
        return
    else:  # tool.call: bookkeeping, not conversation
        return
    state.add(_Entry(seq, message, estimate_tokens(message)))


def _sent_ids(calls: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ids to send back with a reply's calls: the provider's own, except where
    one is empty or repeated within the reply (then made unique by its index), so
    that each result names exactly one call."""
    ids = [str(call.get("id") or "") for call in calls]
    return [
        sent if sent and ids.count(sent) == 1 else f"{sent or 'call'}-{index}"
        for index, sent in enumerate(ids)
    ]


def _system(state: _State, skills_prompt: str, prompt: str) -> dict[str, Any]:
    parts = [SYSTEM]
    if prompt.strip():  # the node's (its harness's) own instructions
        parts.append(prompt.strip())
    if skills_prompt.strip() and "<skill>" in skills_prompt:
        parts.append(
            "Skills extend what you can do. Each has instructions; load one with "
            "`skill load NAME` when it fits the task.\n" + skills_prompt
        )
    for name, body in state.loaded.items():
        parts.append(f'<loaded_skill name="{name}">\n{body}\n</loaded_skill>')
    return {"role": "system", "content": "\n\n".join(parts)}


def _compaction(state: _State) -> dict[str, Any] | None:
    """Which older turns to fold into a summary (cut before a user message)."""
    user_turns = [i for i, e in enumerate(state.entries) if e.message["role"] == "user"]
    if len(user_turns) <= KEEP_TURNS:
        return None
    cut = user_turns[-KEEP_TURNS]
    old = state.entries[:cut]
    if not old:
        return None
    digest = []
    if state.summary:
        digest.append(state.summary)
    for entry in old:
        m = entry.message
        if m["role"] == "user":
            digest.append(f"- asked: {str(m['content'])[:300]}")
        elif m["role"] == "assistant":
            for call in m.get("tool_calls") or ():
                digest.append(
                    f"- ran: {json.loads(call['function']['arguments'])['command'][:200]}"
                )
            if m.get("content"):
                digest.append(f"- answered: {str(m['content'])[:300]}")
    return {
        "through_seq": old[-1].seq,
        "fallback": "Earlier in this session:\n" + "\n".join(digest),
        "summarize": [e.message for e in old][-200:],
    }


@hookimpl
def session_assemble(input: Mapping[str, Any]) -> dict[str, Any]:
    session_id = input["session_id"]
    history: Sequence[Mapping[str, Any]] = input["history"]
    state = _sessions.get(session_id)
    if (
        state is None
        or input.get("rebuild")
        or state.processed > len(history)
        or (state.processed and history[state.processed - 1]["seq"] != state.last_seq)
    ):
        state = _State()
    _sessions[session_id] = state
    _sessions.move_to_end(session_id)
    while len(_sessions) > CACHE_SESSIONS:
        _sessions.popitem(last=False)
    for item in history[state.processed :]:
        _convert(state, item["seq"], item["fact"])
    state.processed = len(history)
    state.last_seq = history[-1]["seq"] if history else 0

    messages = [_system(state, input.get("skills_prompt", ""), input.get("prompt", ""))]
    if state.summary:
        messages.append(
            {
                "role": "user",
                "content": f"[summary of the earlier part of this session]\n{state.summary}",
            }
        )
    messages.extend(e.message for e in state.entries)
    result: dict[str, Any] = {"messages": messages}
    budget = int(input.get("budget") or 0)
    if budget and state.tokens > budget * COMPACT_AT:
        compaction = _compaction(state)
        if compaction is not None:
            result["compaction"] = compaction
    return result
