"""SessionContext: SessionHistory projected into the messages a model reads.

The projection itself is policy: the ``session.assemble`` provider (the
standard aos-context skill) builds it. The kernel gives the provider the
session's history view and the context face of the active skills, records a
``context.compacted`` fact when the provider asks for older turns to be
summarized, and asks the model for that summary.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aos.facts import ContextCompacted
from aos.hooks import HookError
from aos.llm import LLMClient, LLMError
from aos.runtimelog import LogEntry
from aos.skills.registry import available_skills_prompt

if TYPE_CHECKING:
    from aos.agent import Agents, EffectiveConfig
    from aos.config import Config
    from aos.history import SessionHistory
    from aos.hooks import HookRunner
    from aos.session import SCB
    from aos.skills.registry import SkillRegistry

FACE_CACHE = 256
"""Context faces kept (one per distinct set of active skills)."""
SUMMARY_INSTRUCTION = (
    "Summarize this earlier part of an agent's session for the agent itself: the goals, "
    "what was done (commands and their outcomes), facts learned, and what is still open. "
    "Be concise and concrete; keep names, paths and numbers."
)


@dataclass(frozen=True)
class SkillContext:
    """The context face of a set of active skills."""

    names: list[str]
    """The active skills found in the registry, by name."""
    listed: list[dict[str, str]]
    """``[{"name", "description"}]``, as ``session.assemble`` gets them."""
    prompt: str
    """The ``<available_skills>`` block listed to the model."""
    path: list[str]
    """Their ``scripts/`` folders, for bash's PATH."""


def system_prompt(node: str, agent: str) -> str:
    """The ``prompt`` of ``session.assemble``: the node's, then the agent's effective
    addition, a blank line between (either may be empty)."""
    if not agent:
        return node
    return f"{node.rstrip()}\n\n{agent}" if node.strip() else agent


def _assembled(result: Any) -> tuple[list[dict[str, Any]], Mapping[str, Any] | None]:
    """A provider's answer: a list of messages, or {"messages", "compaction"}."""
    if isinstance(result, list):
        return result, None
    if isinstance(result, Mapping) and isinstance(result.get("messages"), list):
        return result["messages"], result.get("compaction")
    raise HookError(
        "session.assemble", f"session.assemble returned {type(result).__name__}, not messages"
    )


class SessionContext:
    """Builds a session's context through ``session.assemble``; keeps the
    context faces of the skill sets it has seen until the registry changes."""

    def __init__(
        self,
        config: Config,
        skills: SkillRegistry,
        history: SessionHistory,
        agents: Agents,
        hooks: HookRunner,
        llm: Callable[[], LLMClient],
        log: Callable[[LogEntry], None],
    ) -> None:
        self._config = config
        self._skills = skills
        self._history = history
        self._agents = agents
        self._hooks = hooks
        self._llm = llm
        self._log = log
        self._faces: dict[frozenset[str], SkillContext] = {}

    def face(self, active: frozenset[str]) -> SkillContext:
        """The context face of these active skills, kept until the registry changes
        (a ReAct step needs it twice: for the context and for bash's PATH)."""
        face = self._faces.get(active)
        if face is None:
            skills = self._skills.active(sorted(active))
            face = SkillContext(
                names=[s.name for s in skills],
                listed=[{"name": s.name, "description": s.description} for s in skills],
                prompt=available_skills_prompt(skills),
                path=[str(d) for s in skills if (d := s.scripts_dir) is not None],
            )
            if len(self._faces) >= FACE_CACHE:
                self._faces.clear()
            self._faces[active] = face
        return face

    def forget_faces(self) -> None:
        """The registry changed: faces are built anew."""
        self._faces.clear()

    async def face_of(self, agent_id: str, session_id: str | None = None) -> SkillContext:
        """The context face of an agent's active skills (in a session)."""
        return self.face(await self._agents.active_skills(agent_id, session_id))

    async def assemble(
        self,
        scb: SCB,
        *,
        active: frozenset[str],
        rebuild: bool = False,
        record: bool = True,
        effective: EffectiveConfig | None = None,
    ) -> list[dict[str, Any]]:
        """SessionHistory -> SessionContext through the ``session.assemble`` provider.

        A provider may ask for older turns to be compacted (``compaction``); the
        kernel then asks the model for the summary (the provider's fallback if
        that fails), records a ``context.compacted`` fact and assembles again."""
        face = self.face(active)
        effective = effective or await self._agents.effective(scb.agent_id)
        history = await self._history.view(scb.id, refresh=rebuild)
        if self._history.reassemble_due(scb.id):  # facts taken ahead were taken out again
            rebuild = True
        aoscb = self._config.aoscb
        request = {
            "session_id": scb.id,
            "agent_id": scb.agent_id,
            "history": history,
            "skills": face.listed,
            "skills_prompt": face.prompt,
            "budget": aoscb.limits.context_budget,
            "prompt": system_prompt(aoscb.prompt, effective.prompt),
            "model": effective.model,
            "rebuild": rebuild,
        }
        result = await self._hooks.provide("session.assemble", request, active=active)
        messages, compaction = _assembled(result)
        if compaction is None or not record:
            return messages
        summary = await self._summarize(compaction, effective.model)
        await self._history.append(
            scb,
            ContextCompacted(summary=summary, through_seq=int(compaction["through_seq"])),
            active=active,
        )
        request["history"] = await self._history.view(scb.id)
        messages, _ = _assembled(
            await self._hooks.provide("session.assemble", request, active=active)
        )
        return messages

    async def _summarize(self, compaction: Mapping[str, Any], model: str | None) -> str:
        fallback = str(compaction.get("fallback") or "")
        turns = compaction.get("summarize")
        if not turns or model is None:
            return fallback
        try:
            done = await self._llm().complete(
                model=model,
                messages=[
                    {"role": "system", "content": SUMMARY_INSTRUCTION},
                    {"role": "user", "content": json.dumps(turns, ensure_ascii=False)},
                ],
            )
        except LLMError as exc:
            self._log(
                LogEntry(
                    kind="context.summary",
                    level="warning",
                    message=f"summary failed, using the fallback: {exc.message}",
                )
            )
            return fallback
        return done.content.strip() or fallback
