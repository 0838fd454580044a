"""The specs and the code agree, both ways (as datasette keeps its hook docs).

For every hook, its section in docs/specs/aos-hooks.md states its kind and
every key its hookspec's docstring declares; for every syscall, its section in
docs/specs/aos-syscall.md states its scope and every params and result field;
no section outlives its hook or syscall; every ``aos`` command has help text
with an example, and a docs entry. The checks are functions of (docs, code), so a test of the
test feeds them a hook, a syscall and a section that disagree.
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import click
import msgspec
import pytest

from aos.cli import cli
from aos.hookspecs import HOOKS, HookSpec
from aos.syscalls import SYSCALLS, Syscall

SPECS = Path(__file__).resolve().parent.parent / "docs" / "specs"
HOOKS_DOC = (SPECS / "aos-hooks.md").read_text(encoding="utf-8")
SYSCALL_DOC = (SPECS / "aos-syscall.md").read_text(encoding="utf-8")
DOCS_TEXT = "\n".join(p.read_text(encoding="utf-8") for p in sorted(SPECS.parent.rglob("*.md"))) + (
    SPECS.parent.parent / "README.md"
).read_text(encoding="utf-8")


# -- the checks ------------------------------------------------------------------------
def sections(doc: str, part: str) -> dict[str, str]:
    """``### name`` sections under the ``## part`` heading, by name."""
    start = doc.index(f"\n## {part}\n")
    end = doc.find("\n## ", start + 1)
    body = doc[start : end if end != -1 else len(doc)]
    found: dict[str, str] = {}
    pieces = re.split(r"^### (\S+)\s*$", body, flags=re.M)
    for name, text in zip(pieces[1::2], pieces[2::2], strict=True):
        found[name] = text
    return found


def mentions(section: str, key: str) -> bool:
    return f"`{key}`" in section or f'"{key}"' in section


def hook_keys(spec: HookSpec, docstring: str) -> list[str]:
    """The keys a hookspec declares: every ``"key"`` of its docstring, and its
    required output keys."""
    quoted = re.findall(r'"([a-z_][a-z0-9_]*)"', docstring)
    return sorted(set(quoted) | set(spec.output_keys))


def hook_problems(name: str, spec: HookSpec, docstring: str, section: str | None) -> list[str]:
    if section is None:
        return [f"no '### {name}' section"]
    problems = []
    if not re.search(rf"\*\*Kind:\*\* {spec.kind}\b", section):
        problems.append(f"the section does not say its kind (**Kind:** {spec.kind})")
    missing = [key for key in hook_keys(spec, docstring) if not mentions(section, key)]
    if missing:
        problems.append(f"the section does not state the keys {missing}")
    return problems


def struct_fields(tp: Any) -> list[str]:
    """Field names of a msgspec Struct type, of the Struct in ``list[S]`` or
    ``S | None``; none for other types."""
    origin = get_origin(tp)
    if origin in (list, Union, types.UnionType):
        return sorted({f for arg in get_args(tp) for f in struct_fields(arg)})
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return [f.encode_name for f in msgspec.structs.fields(tp)]
    return []


def struct_names(tp: Any) -> list[str]:
    """Names of the msgspec Struct types in ``tp`` (``S``, ``list[S]``, ``S | None``)."""
    if get_origin(tp) in (list, Union, types.UnionType):
        return [n for arg in get_args(tp) for n in struct_names(arg)]
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return [tp.__name__]
    return []


def records(doc: str) -> dict[str, str]:
    """The "Result records" entries (``- **Name**: ...``) by name, each with the
    entries it builds on (``SkillInfo plus ...``)."""
    start = doc.index("\n## Result records\n")
    body = doc[start : doc.index("\n## ", start + 1)]
    found = dict(re.findall(r"^- \*\*(\w+)\*\*:(.*?)(?=^- \*\*|\Z)", body, flags=re.M | re.S))
    return {
        name: text + "".join(found[other] for other in found if re.match(rf"\s*{other} plus", text))
        for name, text in found.items()
    }


def syscall_problems(
    sc: Syscall, section: str | None, result_records: Mapping[str, str]
) -> list[str]:
    """Its scope, its params fields in its section, its result fields there or in
    the result record the section names."""
    if section is None:
        return [f"no '### {sc.name}' section"]
    problems = []
    if not re.search(rf"\*\*Scope:\*\* `{re.escape(sc.scope)}`", section):
        problems.append(f"the section does not say its scope (**Scope:** `{sc.scope}`)")
    missing = [f for f in struct_fields(sc.params) if not mentions(section, f)]
    if missing:
        problems.append(f"the section does not state the params fields {missing}")
    named = [n for n in struct_names(sc.result) if n in result_records and n in section]
    where = section + "".join(result_records[n] for n in named)
    missing = [f for f in struct_fields(sc.result) if not mentions(where, f)]
    if missing:
        problems.append(
            f"neither the section nor a result record it names ({named}) states the result "
            f"fields {missing}"
        )
    return problems


def outliving(documented: Iterator[str] | list[str], existing: Mapping[str, object]) -> list[str]:
    return sorted(set(documented) - set(existing))


def commands(group: click.Group, prefix: str = "aos") -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from commands(command, path)


def command_problems(path: str, command: click.Command, docs: str) -> list[str]:
    problems = []
    help_text = inspect.cleandoc(command.help or "")
    if not help_text.strip():
        problems.append("no help text")
    if f"Example:\n  {path}" not in help_text.replace("\x08\n", ""):
        problems.append(f"no example in its help (`Example:` then `{path} ...`)")
    if f"{path}" not in docs:
        problems.append(f"no docs entry (`{path}` appears nowhere in docs/ or README.md)")
    return problems


# -- the docs as they are ------------------------------------------------------------
HOOK_SECTIONS = sections(HOOKS_DOC, "The hooks")
SYSCALL_SECTIONS = sections(SYSCALL_DOC, "The syscalls")
RESULT_RECORDS = records(SYSCALL_DOC)


def _docstring(spec: HookSpec) -> str:
    import aos.hookspecs

    return getattr(aos.hookspecs, spec.python_name).__doc__ or ""


@pytest.mark.parametrize("name", list(HOOKS))
def test_every_hook_section_states_its_kind_and_keys(name: str) -> None:
    spec = HOOKS[name]
    assert hook_problems(name, spec, _docstring(spec), HOOK_SECTIONS.get(name)) == []


@pytest.mark.parametrize("name", list(SYSCALLS))
def test_every_syscall_section_states_its_scope_and_fields(name: str) -> None:
    assert syscall_problems(SYSCALLS[name], SYSCALL_SECTIONS.get(name), RESULT_RECORDS) == []


def test_no_section_outlives_its_hook_or_syscall() -> None:
    assert outliving(list(HOOK_SECTIONS), HOOKS) == []
    assert outliving(list(SYSCALL_SECTIONS), SYSCALLS) == []


@pytest.mark.parametrize("path", [p for p, _ in commands(cli)])
def test_every_command_has_help_and_a_docs_entry(path: str) -> None:
    command = dict(commands(cli))[path]
    assert command_problems(path, command, DOCS_TEXT) == []


# -- the test of the test ------------------------------------------------------------
def test_the_checks_find_what_disagrees() -> None:
    spec = HookSpec("tool.before", "tool_before", "gate", output_keys=frozenset({"args"}))
    documented = '- **Kind:** gate.\n- **Output:** `{"args"}`.\n'
    assert hook_problems("tool.before", spec, 'output: ``{"args": {}}``', documented) == []
    grown = 'output: ``{"args": {}, "sandbox": str}``'  # a hookspec gains a key
    assert hook_problems("tool.before", spec, grown, documented) == [
        "the section does not state the keys ['sandbox']"
    ]

    class Params(msgspec.Struct):
        id: str
        colour: str  # a syscall gains a field the docs lack

    sc = Syscall(
        name="x.get", scope="x.read", doc="", params=Params, result=None,
        handler=None, writes=False,  # type: ignore[arg-type]
    )  # fmt: skip
    section = "- **Scope:** `x.read`.\n| `id` | `str` |\n"
    assert syscall_problems(sc, section, {}) == [
        "the section does not state the params fields ['colour']"
    ]
    assert outliving(["tool.before", "tool.vanished"], {"tool.before": spec}) == ["tool.vanished"]
