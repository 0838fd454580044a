"""AgentOS (``aos``): a microkernel for AI agents.

The kernel holds mechanism only: agent lifecycle, persistence, hooks and
syscalls. Everything a harness decides lives in Skills.
"""

from aos.aoscb import AOSCB, Limits
from aos.config import Config, ConfigError, load_config
from aos.store import Store, StoreError, open_store

__version__ = "0.1.0"

__all__ = [
    "AOSCB",
    "Config",
    "ConfigError",
    "Limits",
    "Store",
    "StoreError",
    "__version__",
    "load_config",
    "open_store",
]
