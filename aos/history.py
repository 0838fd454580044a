"""SessionHistory: every session's facts as this kernel knows them, appended,
written ahead and announced.

The store holds the ground truth (aos/store/); the fact kinds are aos/facts.py.
:class:`SessionHistory` keeps a view of each session read once and extended by
the facts this kernel appends, so a dispatch reads nothing back; every
committed fact is announced on ``history.append`` (the event topic and the
hook). :class:`HistoryWriter` is one dispatch's side of it: facts deferred to
the next commit, a commit going on while the loop does (write-ahead), and facts
whose commit broke off with the connection.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from aos.facts import (
    DispatchFinished,
    Fact,
    HistoryEntry,
    decode_fact,
    encode_fact,
    fact_kind,
    fact_to_builtins,
)
from aos.hooks import HookError
from aos.store import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from aos.events import EventBus
    from aos.hooks import HookRunner
    from aos.session import SCB
    from aos.store import Store

CACHE_SESSIONS = 256
"""Sessions whose view is kept (least recently used dropped first)."""

ActiveSkills = Callable[[str, str], Awaitable[frozenset[str]]]
"""``(agent_id, session_id) -> active skills``: whose ``history.append`` hooks fire."""


def check_fact(fact: Fact) -> None:
    """Refuse a fact that could not be read back: history is append-only, so it
    would break the session for good."""
    try:
        decode_fact(encode_fact(fact))
    except msgspec.ValidationError as exc:
        raise HookError(
            "history.append", f"refusing to record an invalid {fact_kind(fact)} fact: {exc}"
        ) from None


@dataclass
class _View:
    """One session's facts as this kernel knows them, in ``seq`` order."""

    facts: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False
    """False until read from the store, and again once a fact was seen to land
    past a gap (another writer's fact in between): a read is then due."""

    reassemble: bool = False
    """Facts put in ahead of their commit were taken out again: a context built
    incrementally from them must be rebuilt."""
    reading: asyncio.Event | None = None
    """Set when the read under way ends (other readers wait for it)."""
    committing: asyncio.Task[list[int]] | None = None
    """The commit of facts put in ahead, which later appends wait for."""

    @property
    def last_seq(self) -> int:
        return self.facts[-1]["seq"] if self.facts else 0

    def extend(self, entries: Iterable[dict[str, Any]]) -> None:
        """Add entries that follow on; one past a gap marks the view incomplete."""
        for entry in entries:
            last = self.last_seq
            if entry["seq"] == last + 1:
                self.facts.append(entry)
            elif entry["seq"] > last:
                self.complete = False

    def retract(self, ahead: list[dict[str, Any]]) -> None:
        """Take out facts put in ahead of their commit, and all after them."""
        for i in range(len(self.facts) - 1, -1, -1):
            if self.facts[i] is ahead[0]:
                del self.facts[i:]
                break
        self.complete = False
        self.reassemble = True


def _entries(seqs: Iterable[int], facts: Sequence[Fact]) -> list[dict[str, Any]]:
    """View entries (``{seq, ts, fact}``) for facts appended now."""
    now = time.time()
    return [
        {"seq": seq, "ts": now, "fact": fact_to_builtins(fact)}
        for seq, fact in zip(seqs, facts, strict=True)
    ]


class SessionHistory:
    """Appends facts, keeps each session's view, announces what committed."""

    def __init__(
        self, store: Store, events: EventBus, hooks: HookRunner, active_skills: ActiveSkills
    ) -> None:
        self.store = store
        self._events = events
        self._hooks = hooks
        self._active_skills = active_skills
        self._views: collections.OrderedDict[str, _View] = collections.OrderedDict()
        self._loaded: dict[str, tuple[int, frozenset[str]]] = {}
        """session id -> (facts of its view read, skills loaded in it)."""

    # -- reading ---------------------------------------------------------------------
    async def view(self, session_id: str, *, refresh: bool = False) -> list[dict[str, Any]]:
        """The session's facts as plain data (``{seq, ts, fact}``), kept per session.

        Facts this kernel appends join the view as they are committed, so a
        dispatch reads nothing back. The store is read when the view may lack
        facts: on first use, after another writer's fact was seen to land
        between two of ours (a gap in ``seq``), or when ``refresh`` asks for
        whatever other writers committed meanwhile."""
        view = self._views.get(session_id)
        if view is None:
            view = self._views[session_id] = _View()
        self._views.move_to_end(session_id)
        while len(self._views) > CACHE_SESSIONS:
            self._views.popitem(last=False)
        while view.reading is not None or refresh or not view.complete:
            if view.reading is not None:  # one read at a time: wait for it, then look again
                await view.reading.wait()
                continue
            refresh = False
            view.complete = True  # a gap seen while the read is under way clears it again
            view.reading = asyncio.Event()
            try:
                entries = await self.store.read_history(session_id, after=view.last_seq)
                view.extend(
                    {"seq": e.seq, "ts": e.ts, "fact": fact_to_builtins(e.fact)} for e in entries
                )
            except BaseException:
                view.complete = False
                raise
            finally:
                view.reading.set()
                view.reading = None
        return view.facts

    async def read(
        self,
        session_id: str,
        *,
        after: int = 0,
        until: int | None = None,
        limit: int | None = None,
        kinds: Sequence[str] | None = None,
        newest: bool = False,
    ) -> list[HistoryEntry]:
        """Facts with ``after < seq <= until`` (of ``kinds``) as stored, oldest first:
        the oldest ``limit``, or the newest with ``newest`` (``session.history``)."""
        return await self.store.read_history(
            session_id, after=after, until=until, limit=limit, kinds=kinds, newest=newest
        )

    def reassemble_due(self, session_id: str) -> bool:
        """Whether facts put in ahead were taken out of the view since the last
        ask: a context built incrementally from them must be rebuilt."""
        view = self._views.get(session_id)
        if view is None or not view.reassemble:
            return False
        view.reassemble = False
        return True

    async def loaded_skills(self, session_id: str) -> frozenset[str]:
        """Skills loaded in a session (skill.loaded facts not undone by skill.unloaded),
        kept up incrementally from the view."""
        history = await self.view(session_id)
        done, loaded = self._loaded.get(session_id, (0, frozenset()))
        if done > len(history):  # the view was dropped from the cache and rebuilt
            done, loaded = 0, frozenset()
        if done < len(history):
            names = set(loaded)
            for item in history[done:]:
                fact = item["fact"]
                if fact["kind"] == "skill.loaded":
                    names.add(fact["skill"])
                elif fact["kind"] == "skill.unloaded":
                    names.discard(fact["skill"])
            done, loaded = len(history), frozenset(names)
            self._loaded[session_id] = (done, loaded)
        return loaded

    # -- appending -------------------------------------------------------------------
    async def append(self, scb: SCB, fact: Fact, *, active: frozenset[str] | None = None) -> int:
        """Append a fact and announce it on ``history.append``."""
        [seq] = await self.append_all(scb, [fact], active=active)
        return seq

    async def append_all(
        self, scb: SCB, facts: Sequence[Fact], *, active: frozenset[str] | None = None
    ) -> list[int]:
        """Append facts in order, in one commit, and announce each on ``history.append``.

        The facts are checked first (:func:`check_fact`). ``active``: the skills
        whose hooks hear of them, when the caller knows them already."""
        for fact in facts:
            check_fact(fact)
        ahead = self._views.get(scb.id)
        if ahead is not None and ahead.committing is not None:  # after the facts put in ahead
            await asyncio.wait([ahead.committing])
        seqs = await self.store.append_all(scb.id, facts)
        entries = _entries(seqs, facts)
        view = self._views.get(scb.id)
        if view is not None:
            view.extend(entries)
        await self._announce(scb, entries, active)
        return seqs

    def append_ahead(
        self, scb: SCB, facts: Sequence[Fact], *, active: frozenset[str] | None = None
    ) -> asyncio.Task[list[int]] | None:
        """Start appending facts, and put them in the view at once: the caller may
        build on them (the next step's context) while they commit. They are
        announced once committed, as always; the task ends then.

        The view holds them under the ``seq`` they will get unless another writer's
        fact lands first; then, or if the commit fails, they are taken out of the
        view again, which is read anew and reassembled from scratch. None when the
        view cannot take facts ahead (not read yet, or a gap to read first): use
        :meth:`append_all` then."""
        view = self._views.get(scb.id)
        if view is None or not view.complete:
            return None
        for fact in facts:
            check_fact(fact)
        ahead = _entries(range(view.last_seq + 1, view.last_seq + 1 + len(facts)), facts)
        view.facts.extend(ahead)
        view.committing = asyncio.get_running_loop().create_task(
            self._commit_ahead(scb, facts, ahead, view, active)
        )
        return view.committing

    async def _commit_ahead(
        self,
        scb: SCB,
        facts: Sequence[Fact],
        ahead: list[dict[str, Any]],
        view: _View,
        active: frozenset[str] | None,
    ) -> list[int]:
        try:
            seqs = await self.store.append_all(scb.id, facts)
        except BaseException:
            view.retract(ahead)
            self._loaded.pop(scb.id, None)
            raise
        finally:
            if view.committing is asyncio.current_task():
                view.committing = None
        if seqs == [entry["seq"] for entry in ahead]:
            await self._announce(scb, ahead, active)
            return seqs
        view.retract(ahead)  # another writer's fact came first
        self._loaded.pop(scb.id, None)
        await self._announce(scb, _entries(seqs, facts), active)
        return seqs

    async def _announce(
        self, scb: SCB, entries: list[dict[str, Any]], active: frozenset[str] | None
    ) -> None:
        """``history.append`` for committed facts: the event topic and the hook."""
        events = [{"session_id": scb.id, "agent_id": scb.agent_id, **e} for e in entries]
        for event in events:  # subscribers first: in seq order, whatever waits below
            self._events.publish("history.append", event)
        telemetry = self._hooks.telemetry  # the node's, shared with the hook runner
        if telemetry is not None and telemetry.metrics is not None:
            telemetry.metrics.appends.add(len(events))
        if self._hooks.impls("history.append"):
            if active is None:
                active = await self._active_skills(scb.agent_id, scb.id)
            for event in events:
                self._hooks.notify("history.append", event, active=active)

    def writer(self, scb: SCB) -> HistoryWriter:
        """One dispatch's writer for this session."""
        return HistoryWriter(self, scb)


class HistoryWriter:
    """One dispatch's appends: facts deferred into the next commit (a reply goes
    with its first tool call's fact), a commit going on ahead while the loop
    does (a tool's result), and facts whose commit broke off with the
    connection (perhaps written: looked for before they are written again).

    A fact is never recorded without those before it: whatever a failed commit
    held is deferred again, into the next one."""

    def __init__(self, history: SessionHistory, scb: SCB) -> None:
        self._history = history
        self._scb = scb
        self._deferred: list[Fact] = []
        self._committing: asyncio.Task[list[int]] | None = None
        self._ahead: list[Fact] = []
        self._uncertain: list[Fact] = []
        self.known_seq = 0
        """The seq of the last fact this writer saw committed."""

    @property
    def committing(self) -> asyncio.Task[list[int]] | None:
        """The commit going on ahead, if any."""
        return self._committing

    def defer(self, fact: Fact) -> None:
        """Record ``fact`` with the next append, in the same commit (checked now)."""
        check_fact(fact)
        self._deferred.append(fact)

    def take_deferred(self) -> list[Fact]:
        """The facts deferred so far, no longer deferred."""
        facts, self._deferred = self._deferred, []
        return facts

    async def append(self, fact: Fact, active: frozenset[str]) -> int:
        """``fact`` and those deferred, committed now; its seq."""
        await self.settle()
        return (await self.commit([*self._deferred, fact], active))[-1]

    async def commit(self, facts: list[Fact], active: frozenset[str]) -> list[int]:
        """Append facts now. If the store fails they stay deferred, so that the
        next commit takes them along (a tool call's result is never recorded
        without the reply that asked for it)."""
        if self._uncertain:
            facts = await self._drop_landed(facts)
            if not facts:
                return []
        self._deferred = []
        try:
            seqs = await self._history.append_all(self._scb, facts, active=active)
        except StoreError as exc:
            self._deferred[:0] = facts
            if isinstance(exc, StoreUnavailable):
                self._uncertain = facts
            raise
        self.known_seq = seqs[-1]
        return seqs

    async def _drop_landed(self, facts: list[Fact]) -> list[Fact]:
        """``facts`` without the uncertain ones at their head if those were written
        after all (their commit got through, its answer did not): none twice."""
        uncertain = [_identity(fact) for fact in self._uncertain]
        entries = await self._history.store.read_history(self._scb.id, after=self.known_seq)
        stored = [_identity(entry.fact) for entry in entries]
        n = len(uncertain)
        self._uncertain = []
        for i in range(len(stored) - n + 1):
            if stored[i : i + n] == uncertain:
                self.known_seq = entries[i + n - 1].seq
                return facts[n:]
        return facts

    async def append_ahead(self, fact: Fact, active: frozenset[str]) -> None:
        """``fact`` and those deferred start committing while the caller goes on
        (the next step's context and model call); the next append waits for it.
        Committed now instead when the view cannot take facts ahead."""
        await self.settle()
        facts = [*self._deferred, fact]
        committing = (
            None if self._uncertain else self._history.append_ahead(self._scb, facts, active=active)
        )
        if committing is None:
            await self.commit(facts, active)
            return
        self._deferred = []
        self._committing, self._ahead = committing, facts

    async def settle(self) -> None:
        """Wait for the commit going on ahead. If it failed, its facts go again
        with the next append, and the error is raised here."""
        committing = self._committing
        if committing is None:
            return
        await asyncio.wait([committing])  # cancelling the dispatch leaves the commit going
        self._committing = None
        facts, self._ahead = self._ahead, []
        if committing.cancelled():  # whether it was written is unknown: not written again
            raise asyncio.CancelledError
        error = committing.exception()
        if error is not None:
            self._deferred[:0] = facts
            if isinstance(error, StoreUnavailable):
                self._uncertain = facts
            raise error
        self.known_seq = committing.result()[-1]


def _identity(fact: Fact) -> str:
    """What tells a fact apart when looking for it in history: its JSON, except a
    dispatch's end, which is its dispatch (its error may say how long an outage
    lasted, counted anew on each attempt)."""
    if isinstance(fact, DispatchFinished):
        return f"dispatch.finished {fact.dispatch_id}"
    return encode_fact(fact)
