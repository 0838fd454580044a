"""AgentOS (``aos``): a microkernel for AI agents.

The kernel holds mechanism only: agent lifecycle, persistence, hooks and
syscalls. Everything a harness decides lives in Skills.

This module is also the plugin surface: a pip-installed skill, the standard
skills and the drop-in skills import from ``aos`` (and ``aos_sdk``) only —
``hookimpl`` and ``policy`` to implement hooks, the hook vocabulary, the CLI's
syscall helper for commands they add, and the defaults a harness builds on
(docs/specs/aos-hooks.md#the-plugin-surface). Import-linter holds them to it.
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from aos_sdk.protocol import FailurePolicy, HookKind, SyscallErrorCode

from aos.aoscb import AOSCB, CHARS_PER_TOKEN, DEFAULT_MODEL, STANDARD_SKILLS, Limits
from aos.config import Config, ConfigError, load_config
from aos.hooks import policy
from aos.hookspecs import HOOKS, HookSpec, hookimpl
from aos.store import Store, StoreError, open_store

if TYPE_CHECKING:
    from aos.cli.syscall import call as cli_call


def __getattr__(name: str) -> Any:
    if name == "cli_call":  # the CLI brings the daemon and the kernel: loaded when asked for
        from aos.cli.syscall import call

        return call
    raise AttributeError(f"module 'aos' has no attribute {name!r}")


__all__ = [
    "AOSCB",
    "CHARS_PER_TOKEN",
    "DEFAULT_MODEL",
    "HOOKS",
    "STANDARD_SKILLS",
    "Config",
    "ConfigError",
    "FailurePolicy",
    "HookKind",
    "HookSpec",
    "Limits",
    "Store",
    "StoreError",
    "SyscallErrorCode",
    "__version__",
    "cli_call",
    "hookimpl",
    "load_config",
    "open_store",
    "policy",
]
