"""Configuration: the AOSCB plus where each value came from.

Precedence, highest first: command-line flags > ``AOS_*`` environment >
``.env`` in the working directory > ``aoscb.json`` > built-in defaults.
Every resolved value remembers its source so ``aos doctor`` can say it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit

import msgspec
from dotenv import dotenv_values

from aos import harness
from aos.aoscb import AOSCB
from aos.paths import Paths

AOSCB_FILENAME = "aoscb.json"
ENV_FILENAME = ".env"
DEFAULT = "default"


class ConfigError(Exception):
    """A configuration value or file is invalid; the message names it."""


class Setting(NamedTuple):
    key: str
    """Dotted key: an AOSCB field (``limits.max_steps``) or a node setting."""
    env: str
    """The environment (and ``.env``) variable that sets it."""
    doc: str
    is_list: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("home", "AOS_HOME", "put config, data, state and sockets under this one directory"),
    Setting("config", "AOS_CONFIG", "path of the aoscb.json to read"),
    Setting("db_url", "AOS_DB_URL", "database: sqlite:///PATH (default) or postgresql://..."),
    Setting("harness", "AOS_HARNESS", "the installed harness whose settings the node takes"),
    Setting("model", "AOS_MODEL", "default model id for agents that do not set one"),
    Setting(
        "default_skills", "AOS_DEFAULT_SKILLS", "comma list of skills active for every agent", True
    ),
    Setting("skill_roots", "AOS_SKILL_ROOTS", "comma list of drop-in skill directories", True),
    Setting("prompt", "AOS_PROMPT", "text added to every agent's system prompt"),
    Setting("sandbox", "AOS_SANDBOX", "agent commands sandboxed: auto, required or off"),
    Setting("agent_env", "AOS_AGENT_ENV", "comma list of variables passed to agent commands", True),
    Setting("ws_listen", "AOS_WS_LISTEN", "HOST:PORT of the WebSocket face for remote services"),
    Setting("limits.max_steps", "AOS_MAX_STEPS", "ReAct steps one dispatch may take"),
    Setting("limits.tool_timeout", "AOS_TOOL_TIMEOUT", "seconds one bash call may run"),
    Setting("limits.tool_output_cap", "AOS_TOOL_OUTPUT_CAP", "bytes of tool output the model sees"),
    Setting("limits.hook_timeout", "AOS_HOOK_TIMEOUT", "seconds one hook implementation may take"),
    Setting("limits.context_budget", "AOS_CONTEXT_BUDGET", "token budget of a session's context"),
)
_NODE_KEYS = frozenset({"home", "config", "db_url"})


@dataclass(frozen=True)
class Config:
    """Resolved configuration of one node."""

    aoscb: AOSCB
    paths: Paths
    db_url: str
    project_dir: Path
    """The working directory the configuration was resolved from."""
    aoscb_file: Path | None
    env_file: Path | None
    sources: dict[str, str] = field(default_factory=dict)
    """Setting key -> where its value came from."""
    _dotenv: Mapping[str, str | None] = field(default_factory=dict, repr=False)
    _environ: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False)

    def environ(self) -> dict[str, str]:
        """The environment the node was configured from (``.env`` under it), for
        the processes it starts: ``.env`` and test environments reach services too."""
        merged = {k: v for k, v in self._dotenv.items() if v is not None}
        merged.update(os.environ)
        merged.update(self._environ)
        return merged

    def getenv(self, name: str) -> str | None:
        """An environment variable, falling back to ``.env`` (e.g. API keys)."""
        value = self._environ.get(name)
        return value if value is not None else self._dotenv.get(name)

    @property
    def skill_root_paths(self) -> list[Path]:
        """Configured skill roots as absolute paths, precedence order."""
        base = self.aoscb_file.parent if self.aoscb_file else self.project_dir
        return [(base / Path(root).expanduser()).resolve() for root in self.aoscb.skill_roots]

    def describe(self) -> dict[str, dict[str, Any]]:
        """Every setting with its value and source, for ``aos doctor``."""
        values: dict[str, Any] = msgspec.to_builtins(self.aoscb)
        out: dict[str, dict[str, Any]] = {}
        for setting in SETTINGS:
            if setting.key == "home":
                value: Any = str(self.paths.config_dir) if self.sources["home"] != DEFAULT else None
            elif setting.key == "config":
                value = str(self.aoscb_file) if self.aoscb_file else None
            elif setting.key == "db_url":
                value = mask_url(self.db_url)
            else:
                value = _get_dotted(values, setting.key)
            out[setting.key] = {"value": value, "source": self.sources[setting.key]}
        return out


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:***@"
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=userinfo + host))


def _get_dotted(values: Mapping[str, Any], key: str) -> Any:
    node: Any = values
    for part in key.split("."):
        node = node[part]
    return node


def _set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _check_db_url(url: str, source: str) -> None:
    """A database URL given by the user names a backend and, for SQLite, a file in
    a directory that exists (a typo must not leave a stray database behind)."""
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        return
    if parts.scheme != "sqlite":
        raise ConfigError(
            f"invalid setting db_url (from {source}): {mask_url(url)!r} is not a database URL: "
            "use sqlite:///ABSOLUTE/PATH/aos.db or postgresql://USER@HOST:PORT/DB"
        )
    raw = unquote(url.removeprefix("sqlite://"))
    path = Path("/" + raw.lstrip("/") if raw.startswith("/") else raw)  # sqlite:////x too
    if not path.is_absolute():
        raise ConfigError(
            f"invalid setting db_url (from {source}): the SQLite path {str(path)!r} is not "
            "absolute: use sqlite:///ABSOLUTE/PATH/aos.db (three slashes)"
        )
    if not path.parent.is_dir():
        raise ConfigError(
            f"invalid setting db_url (from {source}): the directory {path.parent} does not "
            "exist: create it, or point the URL at an existing one"
        )


def load_config(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Resolve the configuration.

    ``flags`` maps setting keys (see :data:`SETTINGS`) to values given on the
    command line; ``None`` values are ignored. Raises :class:`ConfigError`
    naming the setting, its source and what is wrong.
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    environ = os.environ if environ is None else environ
    cwd = (cwd or Path.cwd()).absolute()
    env_file = cwd / ENV_FILENAME
    dotenv: Mapping[str, str | None] = dotenv_values(env_file) if env_file.is_file() else {}

    sources: dict[str, str] = {}
    overrides: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.key in flags:
            sources[setting.key] = f"flag --{setting.key.rsplit('.', 1)[-1].replace('_', '-')}"
            overrides[setting.key] = flags[setting.key]
        elif environ.get(setting.env):  # an empty variable counts as unset
            sources[setting.key] = f"environment {setting.env}"
            overrides[setting.key] = _parse_env(setting, environ[setting.env])
        elif dotenv.get(setting.env):
            sources[setting.key] = f".env {setting.env} ({env_file})"
            overrides[setting.key] = _parse_env(setting, str(dotenv[setting.env]))

    home = overrides.get("home")
    paths = Paths.resolve(Path(home) if home else None)
    sources.setdefault("home", DEFAULT)

    aoscb_file = _find_aoscb(overrides.get("config"), cwd, paths)
    sources.setdefault("config", DEFAULT)
    if not home and aoscb_file is not None and aoscb_file.parent != paths.config_dir:
        paths = paths.for_project(aoscb_file.parent)  # one daemon per project
    values: dict[str, Any] = {}
    if aoscb_file is not None:
        values = _read_aoscb(aoscb_file)
    given = _harness_settings(overrides.get("harness") or values.get("harness"))
    for setting in SETTINGS:
        if setting.key in _NODE_KEYS:
            continue
        if setting.key in overrides:
            _set_dotted(values, setting.key, overrides[setting.key])
        elif aoscb_file is not None and _has_dotted(values, setting.key):
            sources[setting.key] = f"aoscb.json ({aoscb_file})"
        elif setting.key in given:
            _set_dotted(values, setting.key, given[setting.key])
            sources[setting.key] = f"harness {values['harness']}"
        else:
            sources[setting.key] = DEFAULT
    try:
        aoscb = msgspec.convert(values, AOSCB, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(exc, sources)) from None

    db_url = overrides.get("db_url")
    if db_url:
        _check_db_url(str(db_url), sources["db_url"])
    else:
        db_url = f"sqlite://{paths.sqlite_file}"  # its directory is made with the home
    sources.setdefault("db_url", DEFAULT)
    return Config(
        aoscb=aoscb,
        paths=paths,
        db_url=str(db_url),
        project_dir=cwd,
        aoscb_file=aoscb_file,
        env_file=env_file if dotenv else None,
        sources=sources,
        _dotenv=dotenv,
        _environ=environ,
    )


def _harness_settings(name: Any) -> dict[str, Any]:
    """The settings the named harness gives (dotted keys), none without one."""
    if not name:
        return {}
    try:
        return harness.settings_of(harness.load(str(name)).aoscb)
    except harness.HarnessError as exc:
        raise ConfigError(str(exc)) from None


def _parse_env(setting: Setting, raw: str) -> Any:
    if setting.is_list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _has_dotted(values: Mapping[str, Any], key: str) -> bool:
    try:
        _get_dotted(values, key)
    except (KeyError, TypeError):
        return False
    return True


def _find_aoscb(explicit: Any, cwd: Path, paths: Paths) -> Path | None:
    if explicit:
        path = (cwd / Path(str(explicit)).expanduser()).absolute()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (set by --config or AOS_CONFIG)")
        return path
    for candidate in (cwd / AOSCB_FILENAME, paths.config_dir / AOSCB_FILENAME):
        if candidate.is_file():
            return candidate
    return None


def _read_aoscb(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        values = msgspec.json.decode(raw)
        msgspec.convert(values, AOSCB)  # strict: the file's own types must be right
    except msgspec.ValidationError as exc:  # (a subclass of DecodeError: test it first)
        raise ConfigError(f"{path}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    return values


def _explain(exc: msgspec.ValidationError, sources: Mapping[str, str]) -> str:
    """Name the setting and where its bad value came from."""
    message = str(exc)
    path = message.rsplit(" - at `$.", 1)
    if len(path) == 2:
        key = path[1].rstrip("`").split("[", 1)[0]
        detail = path[0]
        return f"invalid setting {key} (from {sources.get(key, DEFAULT)}): {detail}"
    return f"invalid configuration: {message}"
