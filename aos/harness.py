"""Harnesses: a set of skills plus the node settings that make them one product,
shipped as a pip package.

A harness package declares, in the ``aos.harnesses`` entry point group, a name
and an object (a mapping) with ``description``, ``skills`` (the skills it
brings: its own plugin skills, or others it requires) and ``aoscb`` (an
aoscb.json fragment: ``model``, ``default_skills``, ``limits``...). A node that
names a harness (``"harness"`` in aoscb.json, ``AOS_HARNESS``) takes those
settings wherever nothing more specific sets them (see :mod:`aos.config`). The
standard harness, ``standard``, is declared the same way by aos-kernel.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

import msgspec

ENTRY_POINT_GROUP = "aos.harnesses"
SETTABLE = frozenset(
    {
        "model",
        "default_skills",
        "sandbox",
        "prompt",
        "limits.max_steps",
        "limits.tool_timeout",
        "limits.tool_output_cap",
        "limits.hook_timeout",
        "limits.context_budget",
    }
)
"""The settings a harness may give (not the node's own: database, home, skill roots)."""


class HarnessError(Exception):
    """A harness that is not installed or does not load; the message says which."""


class Harness(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str = ""
    description: str = ""
    skills: list[str] = []
    """The skills it brings (informative: its package installs them)."""
    aoscb: dict[str, Any] = {}
    """The settings it gives, as an aoscb.json fragment."""
    distribution: str | None = None
    version: str | None = None


def installed() -> dict[str, EntryPoint]:
    """Every harness entry point, by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load(name: str) -> Harness:
    """The harness ``name``, checked: raises :class:`HarnessError`."""
    found = installed()
    ep = found.get(name)
    if ep is None:
        known = ", ".join(sorted(found)) or "none"
        raise HarnessError(
            f"no harness named {name!r} is installed (installed: {known}; see `aos harness list`)"
        )
    try:
        declared = ep.load()
        harness = msgspec.convert(declared, Harness)
    except msgspec.ValidationError as exc:
        raise HarnessError(f"harness {name} ({ep.value}) is invalid: {exc}") from None
    except Exception as exc:
        raise HarnessError(
            f"harness {name} ({ep.value}) failed to load: {type(exc).__name__}: {exc}"
        ) from None
    unknown = sorted(set(settings_of(harness.aoscb)) - SETTABLE)
    if unknown:
        raise HarnessError(
            f"harness {name} sets {', '.join(unknown)}: a harness may set only "
            f"{', '.join(sorted(SETTABLE))}"
        )
    dist = ep.dist
    return msgspec.structs.replace(
        harness,
        name=name,
        distribution=dist.name if dist else None,
        version=dist.version if dist else None,
    )


def settings_of(fragment: dict[str, Any]) -> dict[str, Any]:
    """An aoscb.json fragment as dotted keys (``limits.max_steps``) and values."""
    flat: dict[str, Any] = {}
    for key, value in fragment.items():
        if key == "limits" and isinstance(value, dict):
            flat.update({f"limits.{k}": v for k, v in value.items()})  # type: ignore[misc]
        else:
            flat[key] = value
    return flat
