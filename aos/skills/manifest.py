"""SKILL.md: the Agent Skills format, plus AgentOS's service face.

A SKILL.md is YAML frontmatter between ``---`` lines (closed by the first line
that is exactly ``---``), then a Markdown body. Scalars stay strings as written
(``1.0`` and ``yes`` are not coerced). UTF-8 with or without BOM, LF or CRLF,
leading blank lines and a missing final newline are all accepted.

Two modes, as the Agent Skills client guide advises: loading is **lenient**
(only a missing name/description, no frontmatter or unparseable YAML make a
skill broken; everything else is a warning) and validation (``aos skill
validate``) is **strict** (every deviation is an error). Every message names
the file, the field and what is wrong.
"""

from __future__ import annotations

import math
import re
import unicodedata
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from aos.hookspecs import HOOKS

MAX_NAME = 64
MAX_DESCRIPTION = 1024
MAX_COMPATIBILITY = 500
MAX_SKILL_MD = 1024 * 1024
"""Bytes a SKILL.md may have: a bigger one makes its skill broken, unread."""
SPEC_FIELDS = ("name", "description", "license", "compatibility", "metadata", "allowed-tools")
AOS_FIELDS = ("service", "scopes", "hooks")
"""AgentOS extensions (``service`` may also be given as ``metadata.service``)."""
FAILURE_POLICIES = ("fail-open", "fail-closed")

Level = Literal["error", "warning"]


class Diagnostic(msgspec.Struct, frozen=True):
    level: Level
    file: str
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message}"


class HookSettings(msgspec.Struct, frozen=True, omit_defaults=True):
    """A skill's declared timeout and failure policy for one hook."""

    timeout: float | None = None
    failure: Literal["fail-open", "fail-closed"] | None = None


class Manifest(msgspec.Struct, kw_only=True):
    """What a SKILL.md says."""

    name: str
    description: str
    body: str
    license: str | None = None
    compatibility: str | None = None
    metadata: dict[str, str] = {}
    allowed_tools: list[str] = []
    service: str | None = None
    """Path of the service program, relative to the skill directory."""
    scopes: list[str] = []
    """Syscall scopes the service asks for."""
    hooks: dict[str, HookSettings] = {}
    extra: dict[str, Any] = {}
    """Unknown frontmatter fields, kept as written."""


class ParseResult(msgspec.Struct):
    manifest: Manifest | None
    """None when the skill is broken (see the errors)."""
    diagnostics: list[Diagnostic]

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.level == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.level == "warning"]


_NAME_CHARS = re.compile(r"^[a-z0-9-]+$")


class _Report:
    def __init__(self, file: Path, strict: bool) -> None:
        self.file = str(file)
        self.strict = strict
        self.diagnostics: list[Diagnostic] = []

    def error(self, field: str | None, message: str) -> None:
        self.diagnostics.append(Diagnostic("error", self.file, field, message))

    def deviation(self, field: str | None, message: str) -> None:
        """An error when validating, a warning when loading."""
        self.diagnostics.append(
            Diagnostic("error" if self.strict else "warning", self.file, field, message)
        )


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


_BASE_LOADER: type[yaml.BaseLoader] = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


class _Loader(_BASE_LOADER):  # libyaml when present
    """Every scalar stays a string; a key given twice in one mapping is an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key_node, deep=deep) for key_node, _ in node.value]
        for key in keys:
            if keys.count(key) > 1:
                raise _DuplicateKey(str(key))
        return super().construct_mapping(node, deep=deep)


NO_FRONTMATTER = "no YAML frontmatter: the file must start with a '---' line"
UNCLOSED = "frontmatter is not closed: no line after the opening '---' is exactly '---'"


def split_frontmatter(text: str) -> tuple[str, str, int] | str:
    """``(frontmatter, body, line of the frontmatter's first line in the file)``,
    or what is wrong with the text's frontmatter."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    if start == len(lines) or lines[start] != "---":
        return NO_FRONTMATTER
    for end in range(start + 1, len(lines)):
        if lines[end] == "---":
            frontmatter = "\n".join(lines[start + 1 : end]) + "\n"
            return frontmatter, "\n".join(lines[end + 1 :]).strip(), start + 2
    return UNCLOSED


def parse(path: Path, *, strict: bool = False, expected_name: str | None = None) -> ParseResult:
    """Parse and check the SKILL.md at ``path``.

    ``expected_name``: the name the skill must have (its directory's name, or
    its entry point's name for a plugin skill).
    """
    report = _Report(path, strict)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_SKILL_MD + 1)
        if len(data) > MAX_SKILL_MD:
            report.error(
                None,
                f"over {MAX_SKILL_MD // 1024 // 1024} MiB: a SKILL.md is read into every "
                "context that loads it; keep it short and put the rest in other files",
            )
            return ParseResult(None, report.diagnostics)
        text = data.decode("utf-8")
    except OSError as exc:
        report.error(None, f"cannot read: {exc.strerror}")
        return ParseResult(None, report.diagnostics)
    except UnicodeDecodeError as exc:
        report.error(None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        return ParseResult(None, report.diagnostics)
    parts = split_frontmatter(text)
    if isinstance(parts, str):
        report.error(None, parts)
        return ParseResult(None, report.diagnostics)
    frontmatter, body, first_line = parts
    try:
        data = yaml.load(frontmatter, Loader=_Loader)  # every scalar stays a string
    except _DuplicateKey as exc:
        report.error(exc.key, "given more than once (YAML keys must be unique)")
        return ParseResult(None, report.diagnostics)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + first_line}, column {mark.column + 1}" if mark else ""
        report.error(None, f"invalid YAML in frontmatter{where}: {exc.problem or exc.context}")
        return ParseResult(None, report.diagnostics)
    except yaml.YAMLError as exc:
        report.error(None, f"invalid YAML in frontmatter: {' '.join(str(exc).split())}")
        return ParseResult(None, report.diagnostics)
    if not isinstance(data, dict):
        report.error(None, "frontmatter must be a YAML mapping of fields")
        return ParseResult(None, report.diagnostics)
    return ParseResult(_check(data, body, path, report, expected_name), report.diagnostics)


def _text(
    data: dict[str, Any], field: str, report: _Report, *, required: bool = False
) -> str | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        message = f"must be a string, not a YAML {_yaml_kind(value)}"
        report.error(field, message) if required else report.deviation(field, message)
        return None
    return value


def _yaml_kind(value: Any) -> str:
    return "list" if isinstance(value, list) else "mapping" if isinstance(value, dict) else "string"


def _check(
    data: dict[str, Any], body: str, path: Path, report: _Report, expected_name: str | None
) -> Manifest | None:
    name = _text(data, "name", report, required=True)
    description = _text(data, "description", report, required=True)
    if name is None and "name" not in data:
        report.error("name", "missing (required)")
    elif name is not None and not name.strip():
        report.error("name", "must not be empty")
    if description is None and "description" not in data:
        report.error("description", "missing (required)")
    elif description is not None and not description.strip():
        report.error("description", "must not be empty")
    if name is not None and name.strip():
        _check_name(
            unicodedata.normalize("NFKC", name.strip()), report, expected_name or path.parent.name
        )
    if description is not None and len(description) > MAX_DESCRIPTION:
        report.deviation(
            "description", f"is {len(description)} characters; the limit is {MAX_DESCRIPTION}"
        )
    compatibility = _text(data, "compatibility", report)
    if compatibility is not None and len(compatibility) > MAX_COMPATIBILITY:
        report.deviation(
            "compatibility", f"is {len(compatibility)} characters; the limit is {MAX_COMPATIBILITY}"
        )
    license_ = _text(data, "license", report)
    metadata = _metadata(data.get("metadata"), report)
    allowed_tools = _allowed_tools(data.get("allowed-tools"), report)
    service = _service(data, metadata, path.parent, report)
    scopes = _scopes(data.get("scopes", metadata.get("scopes")), report)
    hooks = _hooks(data.get("hooks"), report)
    extra = {k: v for k, v in data.items() if k not in SPEC_FIELDS + AOS_FIELDS}
    for key in extra:
        report.deviation(str(key), "unknown field (kept, but no client is known to read it)")
    if name is None or description is None or any(d.level == "error" for d in report.diagnostics):
        return None  # broken: lenient loading only forgives warnings
    return Manifest(
        name=unicodedata.normalize("NFKC", name.strip()),
        description=description.strip(),
        body=body,
        license=license_,
        compatibility=compatibility,
        metadata=metadata,
        allowed_tools=allowed_tools,
        service=service,
        scopes=scopes,
        hooks=hooks,
        extra=extra,
    )


def check_name(name: str, expected: str) -> list[str]:
    """What is wrong with a skill name (empty when nothing is)."""
    problems = []
    if len(name) > MAX_NAME:
        problems.append(f"'{name}' is {len(name)} characters; the limit is {MAX_NAME}")
    if name != name.lower():
        problems.append(f"'{name}' must be lowercase")
    if not _NAME_CHARS.match(name.lower()):
        problems.append(f"'{name}' may contain only lowercase letters, digits and hyphens")
    if name.startswith("-") or name.endswith("-"):
        problems.append(f"'{name}' must not start or end with a hyphen")
    if "--" in name:
        problems.append(f"'{name}' must not contain consecutive hyphens")
    if name != unicodedata.normalize("NFKC", expected):
        problems.append(f"'{name}' does not match its directory name '{expected}'")
    return problems


def _check_name(name: str, report: _Report, expected: str) -> None:
    for problem in check_name(name, expected):
        report.deviation("name", problem)


def _metadata(value: Any, report: _Report) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        report.deviation(
            "metadata", f"must be a mapping of strings, not a YAML {_yaml_kind(value)}"
        )
        return {}
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str):
            report.deviation(f"metadata.{key}", f"must be a string, not a YAML {_yaml_kind(item)}")
            continue
        out[str(key)] = item
    return out


def _allowed_tools(value: Any, report: _Report) -> list[str]:
    """The spec's space-separated string, a comma-separated string, or a YAML list."""
    if value is None:
        return []
    if isinstance(value, str):
        separator = "," if "," in value else None  # None: any run of whitespace
        return [t.strip() for t in value.split(separator) if t.strip()]
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return [t.strip() for t in value if t.strip()]
    report.deviation("allowed-tools", "must be a string of tool names or a list of strings")
    return []


def _service(
    data: dict[str, Any], metadata: dict[str, str], skill_dir: Path, report: _Report
) -> str | None:
    field = "service" if "service" in data else "metadata.service"
    value = data.get("service", metadata.get("service"))
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        report.error(field, "must be a path to the service program inside the skill directory")
        return None
    if Path(value).is_absolute():
        report.error(field, f"'{value}' is absolute; give a path inside the skill directory")
        return None
    root = skill_dir.resolve()
    target = (root / value).resolve()
    if not target.is_relative_to(root):
        report.error(field, f"'{value}' resolves outside the skill directory")
        return None
    if target == root:
        report.error(
            field,
            f"'{value}' is the skill directory itself; give the path of the service program inside it",
        )
        return None
    if not target.is_file():
        report.error(field, f"'{value}' does not exist in the skill directory")
        return None
    return str(target.relative_to(root))


def _scopes(value: Any, report: _Report) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [s for s in re.split(r"[,\s]+", value) if s]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    report.error("scopes", "must be a list of syscall scope names")
    return []


def _hooks(value: Any, report: _Report) -> dict[str, HookSettings]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        report.error("hooks", "must map hook names to {timeout, failure}")
        return {}
    out: dict[str, HookSettings] = {}
    for hook, settings in value.items():
        field = f"hooks.{hook}"
        if hook not in HOOKS:
            report.error(field, f"no such hook (hooks are: {', '.join(HOOKS)})")
            continue
        if not isinstance(settings, dict):
            report.error(field, "must be a mapping with timeout and/or failure")
            continue
        raw = settings.get("timeout")
        if raw is not None and not isinstance(raw, str):
            report.error(
                f"{field}.timeout", f"must be a number of seconds, not a YAML {_yaml_kind(raw)}"
            )
            continue
        try:
            timeout = float(raw) if raw is not None else None
        except ValueError:
            timeout = math.nan
        if timeout is not None and not math.isfinite(timeout):
            report.error(f"{field}.timeout", f"'{raw}' is not a number of seconds")
            continue
        if timeout is not None and timeout <= 0:
            report.error(f"{field}.timeout", "must be more than 0 seconds")
            continue
        failure = settings.get("failure")
        if failure is not None and failure not in FAILURE_POLICIES:
            report.error(
                f"{field}.failure", f"'{failure}' is not one of {', '.join(FAILURE_POLICIES)}"
            )
            continue
        unknown = sorted(set(settings) - {"timeout", "failure"})
        if unknown:
            report.deviation(field, f"unknown setting(s) {', '.join(unknown)}")
        out[hook] = HookSettings(timeout=timeout, failure=failure)
    return out
