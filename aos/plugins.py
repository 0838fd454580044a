"""The plugin manager and in-process plugin loading.

One ``PluginManager("aos")`` holds every hook implementation: in-process skills
loaded from the ``aos.skills`` entry point group (the standard skills register
the same way), and the proxies of out-of-process services. ``AOS_LOAD_PLUGINS``
(a comma list of entry point names) restricts which entry points load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from aos import hookspecs

ENTRY_POINT_GROUP = "aos.skills"


class AOSPluginManager(pluggy.PluginManager):
    """A PluginManager that counts registrations, so callers can cache call orders."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.generation = 0
        self.add_hookspecs(hookspecs)

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        self.generation += 1
        return registered

    def unregister(self, plugin: Any | None = None, name: str | None = None) -> Any | None:
        removed = super().unregister(plugin, name)
        self.generation += 1
        return removed


@dataclass(frozen=True)
class PluginLoad:
    """What happened to one entry point."""

    name: str
    value: str
    distribution: str | None
    error: str | None = None


def allowed_plugins(environ: os._Environ[str] | dict[str, str] | None = None) -> set[str] | None:
    """Entry point names ``AOS_LOAD_PLUGINS`` allows (None: all of them)."""
    raw = (os.environ if environ is None else environ).get("AOS_LOAD_PLUGINS")
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def load_entrypoint_plugins(
    pm: AOSPluginManager, allowed: set[str] | None = None
) -> list[PluginLoad]:
    """Register every ``aos.skills`` entry point (or the allowed ones).

    A plugin that fails to import or to register is reported with its error
    and skipped; the others load.
    """
    results: list[PluginLoad] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.has_plugin(ep.name):
            continue
        results.append(_load(pm, ep))
    return results


def _load(pm: AOSPluginManager, ep: EntryPoint) -> PluginLoad:
    dist = ep.dist.name if ep.dist else None
    try:
        plugin = ep.load()
        pm.register(plugin, name=ep.name)
    except Exception as exc:
        return PluginLoad(ep.name, ep.value, dist, f"{type(exc).__name__}: {exc}")
    try:
        pm.check_pending()  # a hook implementation with no such hook (a typo) is an error
    except pluggy.PluginValidationError as exc:
        pm.unregister(name=ep.name)
        return PluginLoad(ep.name, ep.value, dist, str(exc))
    return PluginLoad(ep.name, ep.value, dist)
