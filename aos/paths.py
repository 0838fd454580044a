"""Where AgentOS keeps its files.

Paths come from platformdirs; a project (a directory with its own ``aoscb.json``)
gets a node of its own under them (:meth:`Paths.for_project`); ``AOS_HOME`` (or
``--home``) puts every one of them under a single directory instead, which is
what tests and containers use.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "aos"


@dataclass(frozen=True)
class Paths:
    """The directories of one AgentOS installation."""

    config_dir: Path
    """Where a user-level ``aoscb.json`` may live."""
    data_dir: Path
    """Durable data: the SQLite database, agent workspaces."""
    state_dir: Path
    """Logs and pid files."""
    runtime_dir: Path
    """Sockets."""
    skills_dir: Path
    """The user's own skills (one of the discovery roots)."""

    @classmethod
    def resolve(cls, home: Path | None) -> Paths:
        if home is not None:
            home = home.expanduser().absolute()
            return cls(
                config_dir=home,
                data_dir=home / "data",
                state_dir=home / "state",
                runtime_dir=home / "run",
                skills_dir=home / "skills",
            )
        dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
        data_dir = Path(dirs.user_data_dir)
        with warnings.catch_warnings():
            # Without XDG_RUNTIME_DIR platformdirs falls back to a per-user /tmp
            # directory, which is what we want; its warning would only be noise.
            warnings.simplefilter("ignore")
            runtime_dir = Path(dirs.user_runtime_dir)
        return cls(
            config_dir=Path(dirs.user_config_dir),
            data_dir=data_dir,
            state_dir=Path(dirs.user_state_dir),
            runtime_dir=runtime_dir,
            skills_dir=data_dir / "skills",
        )

    def for_project(self, project: Path) -> Paths:
        """The node of one project: its own database, log, pidfile and sockets (under
        ``projects/<name>-<hash>``, ``p-<hash>`` for the short socket paths), so two
        checkouts never share a daemon. The user-level config and skills stay shared."""
        digest = hashlib.sha256(str(project).encode()).hexdigest()[:10]
        slug = f"{re.sub(r'[^A-Za-z0-9._-]', '_', project.name)[:40]}-{digest}"
        return dataclasses.replace(
            self,
            data_dir=self.data_dir / "projects" / slug,
            state_dir=self.state_dir / "projects" / slug,
            runtime_dir=self.runtime_dir / f"p-{digest}",
        )

    @property
    def sqlite_file(self) -> Path:
        """The embedded database used when no ``AOS_DB_URL`` is set."""
        return self.data_dir / "aos.db"

    @property
    def log_file(self) -> Path:
        """The daemon log."""
        return self.state_dir / "aos.log"
