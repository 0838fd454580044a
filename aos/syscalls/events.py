"""``events.subscribe``: a stream of kernel events on the caller's connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgspec

from aos.events import current_stream
from aos.principals import Principal
from aos.syscalls._table import (
    SyscallError,
    dispatch_runs,
    session_for,
    syscall,
)

if TYPE_CHECKING:
    from aos.kernel import Kernel


class SubscribeParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    topics: list[Literal["history.append", "stream", "skill", "service"]] = msgspec.field(
        default_factory=lambda: ["history.append", "stream", "skill", "service"]
    )
    session_id: str | None = None
    """Only this session's facts and stream."""


class Subscribed(msgspec.Struct):
    subscription: int
    topics: list[str]


@syscall(
    "events.subscribe",
    scope="events.subscribe",
    doc="Stream kernel events (facts as they are appended, skill and service changes) on this connection.",
)
async def events_subscribe(
    kernel: Kernel, principal: Principal, params: SubscribeParams
) -> Subscribed:
    stream = current_stream.get()
    if stream is None:
        raise SyscallError(
            "invalid", "events.subscribe streams over a connection: use aos_sdk.Client.subscribe"
        )
    agent_ids: frozenset[str] | None = None
    if principal.agent_id is not None:
        if params.session_id is None:
            raise SyscallError(
                "denied",
                f"{principal.name} may subscribe to its own sessions only: name session_id",
            )
        await session_for(kernel, principal, params.session_id)
        subtree = await kernel.agents.within(principal.agent_id, await kernel.agents.all())
        agent_ids = frozenset(a.id for a in subtree)

    holder: list[int] = []

    def deliver(topic: str, data: Any) -> None:
        if principal.kind == "agent" and not dispatch_runs(kernel, principal):
            kernel.events.unsubscribe(holder[0])  # the token's dispatch has ended: so has this
            return
        stream.deliver(holder[0], topic, data)

    sub = kernel.events.subscribe(
        deliver,
        topics=frozenset(params.topics),
        session_id=params.session_id,
        agent_ids=agent_ids,
    )
    holder.append(sub.id)
    stream.on_close(lambda: kernel.events.unsubscribe(sub.id))
    return Subscribed(subscription=sub.id, topics=list(params.topics))
