"""SKILL.md parsing and validation (aos.skills.manifest).

Three sources of cases:

- ``tests/fixtures/skills/<case>/SKILL.md``: one directory per edge case, the
  directory named after the case (and, for the valid ones, after the skill).
  ``CASES`` gives each one's verdict in both modes and the exact messages.
- The compatibility corpus, read in place from ``../shared/testdata/agent-skills``
  (12 skills from anthropics/skills; see its SOURCE.md). Never copied here.
- The reference validator ``skills-ref`` as an oracle: strict validation must
  reach its verdict on every fixture and corpus skill, except the differences
  listed (with a reason) in ``DELIBERATE_DIFFERENCES``.

"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest
import skills_ref

from aos.hookspecs import HOOKS
from aos.skills.manifest import Diagnostic, HookSettings, Manifest, ParseResult, parse

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "skills"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "agent-skills"
CORPUS_SKILLS = (
    "algorithmic-art",
    "brand-guidelines",
    "canvas-design",
    "claude-api",
    "frontend-design",
    "internal-comms",
    "mcp-builder",
    "skill-creator",
    "slack-gif-creator",
    "theme-factory",
    "web-artifacts-builder",
    "webapp-testing",
)

LOADS, BROKEN = True, False
VALID, INVALID = True, False


class Case(NamedTuple):
    case: str
    """The fixture directory under tests/fixtures/skills."""
    loads: bool
    """Lenient loading (``parse(path)``): LOADS or BROKEN."""
    valid: bool
    """Strict validation (``parse(path, strict=True)``): VALID or INVALID."""
    messages: tuple[str, ...] = ()
    """``str(diagnostic)`` with the fixtures folder cut off, in order. Both modes
    report the same messages: strict makes every one an error, lenient makes the
    deviations warnings (all warnings when the skill loads, all errors here when
    it is broken)."""


def _name(case: str, name: str, *problems: str) -> tuple[str, ...]:
    """Messages about a bad ``name`` whose fixture directory is ``case``."""
    file = f"{case}/SKILL.md: name: '{name}'"
    return (
        *(f"{file} {p}" for p in problems),
        f"{file} does not match its directory name '{case}'",
    )


_AOS_HOOKS = ", ".join(HOOKS)
_ONLY_NAME_CHARS = "may contain only lowercase letters, digits and hyphens"
_HYPHEN_ENDS = "must not start or end with a hyphen"
_NO_FRONTMATTER = "no YAML frontmatter: the file must start with a '---' line"
_UNCLOSED = "frontmatter is not closed: no line after the opening '---' is exactly '---'"

CASES: tuple[Case, ...] = (
    # -- valid: the file format --
    Case("minimal-valid", LOADS, VALID),
    Case("bom", LOADS, VALID),
    Case("crlf", LOADS, VALID),
    Case("leading-blank-lines", LOADS, VALID),
    Case("no-final-newline", LOADS, VALID),
    Case("body-dashes", LOADS, VALID),
    Case("dashes-in-frontmatter-value", LOADS, VALID),
    # -- valid: the fields --
    Case("allowed-tools-space", LOADS, VALID),
    Case("allowed-tools-comma", LOADS, VALID),
    Case("allowed-tools-comma-spaces", LOADS, VALID),
    Case("allowed-tools-list", LOADS, VALID),
    Case("allowed-tools-flow-list", LOADS, VALID),
    Case("coerced-scalars", LOADS, VALID),
    Case("service-top", LOADS, VALID),
    Case("service-metadata", LOADS, VALID),
    Case("scopes", LOADS, VALID),
    Case("scopes-string", LOADS, VALID),
    Case("hooks", LOADS, VALID),
    Case("name-of-exactly-sixty-four-characters-the-longest-one-allowed-ok", LOADS, VALID),
    Case("description-1024", LOADS, VALID),
    Case("compatibility-500", LOADS, VALID),
    # -- deviations: load with warnings, fail strict validation --
    Case(
        "unknown-field",
        LOADS,
        INVALID,
        (
            "unknown-field/SKILL.md: x-author: unknown field (kept, but no client is known to read it)",
        ),
    ),
    Case("name-mismatch", LOADS, INVALID, _name("name-mismatch", "other-name")),
    Case(
        "uppercase-name",
        LOADS,
        INVALID,
        _name("uppercase-name", "Uppercase-Name", "must be lowercase"),
    ),
    Case(
        "leading-hyphen", LOADS, INVALID, _name("leading-hyphen", "-leading-hyphen", _HYPHEN_ENDS)
    ),
    Case(
        "trailing-hyphen",
        LOADS,
        INVALID,
        _name("trailing-hyphen", "trailing-hyphen-", _HYPHEN_ENDS),
    ),
    Case(
        "double-hyphen",
        LOADS,
        INVALID,
        _name("double-hyphen", "double--hyphen", "must not contain consecutive hyphens"),
    ),
    Case(
        "invalid-chars", LOADS, INVALID, _name("invalid-chars", "invalid_chars", _ONLY_NAME_CHARS)
    ),
    Case(
        "name-too-long",
        LOADS,
        INVALID,
        _name("name-too-long", "a" * 65, "is 65 characters; the limit is 64"),
    ),
    Case(
        "description-too-long",
        LOADS,
        INVALID,
        ("description-too-long/SKILL.md: description: is 1025 characters; the limit is 1024",),
    ),
    Case(
        "compatibility-too-long",
        LOADS,
        INVALID,
        ("compatibility-too-long/SKILL.md: compatibility: is 501 characters; the limit is 500",),
    ),
    Case(
        "compatibility-not-string",
        LOADS,
        INVALID,
        ("compatibility-not-string/SKILL.md: compatibility: must be a string, not a YAML list",),
    ),
    Case(
        "metadata-not-mapping",
        LOADS,
        INVALID,
        (
            "metadata-not-mapping/SKILL.md: metadata: must be a mapping of strings, not a YAML string",
        ),
    ),
    Case(
        "metadata-nested",
        LOADS,
        INVALID,
        ("metadata-nested/SKILL.md: metadata.nested: must be a string, not a YAML mapping",),
    ),
    Case(
        "allowed-tools-mapping",
        LOADS,
        INVALID,
        (
            "allowed-tools-mapping/SKILL.md: allowed-tools: "
            "must be a string of tool names or a list of strings",
        ),
    ),
    Case(
        "hooks-unknown-setting",
        LOADS,
        INVALID,
        ("hooks-unknown-setting/SKILL.md: hooks.tool.before: unknown setting(s) retries",),
    ),
    # -- broken in both modes: the file --
    Case("no-frontmatter", BROKEN, INVALID, (f"no-frontmatter/SKILL.md: {_NO_FRONTMATTER}",)),
    Case(
        "unclosed-frontmatter",
        BROKEN,
        INVALID,
        (f"unclosed-frontmatter/SKILL.md: {_UNCLOSED}",),
    ),
    Case(
        "invalid-yaml",
        BROKEN,
        INVALID,
        (
            "invalid-yaml/SKILL.md: invalid YAML in frontmatter at line 3, column 17: "
            "mapping values are not allowed in this context",
        ),
    ),
    Case(
        "frontmatter-list",
        BROKEN,
        INVALID,
        ("frontmatter-list/SKILL.md: frontmatter must be a YAML mapping of fields",),
    ),
    Case(
        "empty-frontmatter",
        BROKEN,
        INVALID,
        ("empty-frontmatter/SKILL.md: frontmatter must be a YAML mapping of fields",),
    ),
    Case(
        "duplicate-key",
        BROKEN,
        INVALID,
        ("duplicate-key/SKILL.md: description: given more than once (YAML keys must be unique)",),
    ),
    # -- broken in both modes: the required fields --
    Case("missing-name", BROKEN, INVALID, ("missing-name/SKILL.md: name: missing (required)",)),
    Case(
        "missing-description",
        BROKEN,
        INVALID,
        ("missing-description/SKILL.md: description: missing (required)",),
    ),
    Case("empty-name", BROKEN, INVALID, ("empty-name/SKILL.md: name: must not be empty",)),
    Case(
        "name-not-string",
        BROKEN,
        INVALID,
        ("name-not-string/SKILL.md: name: must be a string, not a YAML list",),
    ),
    Case(
        "empty-description",
        BROKEN,
        INVALID,
        ("empty-description/SKILL.md: description: must not be empty",),
    ),
    Case(
        "blank-description",
        BROKEN,
        INVALID,
        ("blank-description/SKILL.md: description: must not be empty",),
    ),
    # -- broken in both modes: the AOS extensions --
    Case(
        "service-absolute",
        BROKEN,
        INVALID,
        (
            "service-absolute/SKILL.md: service: '/usr/local/bin/serve' is absolute; "
            "give a path inside the skill directory",
        ),
    ),
    Case(
        "service-escape",
        BROKEN,
        INVALID,
        (
            "service-escape/SKILL.md: service: 'bin/../../escape/serve' "
            "resolves outside the skill directory",
        ),
    ),
    Case(
        "service-metadata-escape",
        BROKEN,
        INVALID,
        (
            "service-metadata-escape/SKILL.md: metadata.service: '../escape' "
            "resolves outside the skill directory",
        ),
    ),
    Case(
        "service-empty",
        BROKEN,
        INVALID,
        (
            "service-empty/SKILL.md: service: "
            "must be a path to the service program inside the skill directory",
        ),
    ),
    Case(
        "service-dot",
        BROKEN,
        INVALID,
        (
            "service-dot/SKILL.md: service: '.' is the skill directory itself; "
            "give the path of the service program inside it",
        ),
    ),
    Case(
        "scopes-not-list",
        BROKEN,
        INVALID,
        ("scopes-not-list/SKILL.md: scopes: must be a list of syscall scope names",),
    ),
    Case(
        "hooks-not-mapping",
        BROKEN,
        INVALID,
        ("hooks-not-mapping/SKILL.md: hooks: must map hook names to {timeout, failure}",),
    ),
    Case(
        "hooks-settings-not-mapping",
        BROKEN,
        INVALID,
        (
            "hooks-settings-not-mapping/SKILL.md: hooks.tool.before: "
            "must be a mapping with timeout and/or failure",
        ),
    ),
    Case(
        "hooks-bad-name",
        BROKEN,
        INVALID,
        (f"hooks-bad-name/SKILL.md: hooks.tool.befor: no such hook (hooks are: {_AOS_HOOKS})",),
    ),
    Case(
        "hooks-bad-failure",
        BROKEN,
        INVALID,
        (
            "hooks-bad-failure/SKILL.md: hooks.tool.before.failure: "
            "'ignore' is not one of fail-open, fail-closed",
        ),
    ),
    Case(
        "hooks-bad-timeout",
        BROKEN,
        INVALID,
        (
            "hooks-bad-timeout/SKILL.md: hooks.tool.before.timeout: 'soon' is not a number of seconds",
        ),
    ),
    Case(
        "hooks-zero-timeout",
        BROKEN,
        INVALID,
        ("hooks-zero-timeout/SKILL.md: hooks.tool.before.timeout: must be more than 0 seconds",),
    ),
    Case(
        "hooks-nan-timeout",
        BROKEN,
        INVALID,
        (
            "hooks-nan-timeout/SKILL.md: hooks.tool.before.timeout: 'nan' is not a number of seconds",
        ),
    ),
    Case(
        "hooks-list-timeout",
        BROKEN,
        INVALID,
        (
            "hooks-list-timeout/SKILL.md: hooks.tool.before.timeout: "
            "must be a number of seconds, not a YAML list",
        ),
    ),
)
CASE_BY_ID = {c.case: c for c in CASES}


DELIBERATE_DIFFERENCES: dict[str, str] = {
    "bom": "skills-ref reads without utf-8-sig and wants '---' at byte 0; the issue accepts a BOM",
    "leading-blank-lines": "skills-ref wants '---' at byte 0; the issue accepts leading blank lines",
    "dashes-in-frontmatter-value": "skills-ref splits at the first '---' anywhere, cutting the "
    "quoted description; AOS closes at the first line that is exactly '---'",
    "allowed-tools-flow-list": "strictyaml rejects flow-style [a, b]; AOS reads YAML, lists included",
    "service-top": "AOS extension key 'service' (skills-ref allows only the spec's fields)",
    "scopes": "AOS extension key 'scopes' (skills-ref allows only the spec's fields)",
    "scopes-string": "AOS extension key 'scopes' (skills-ref allows only the spec's fields)",
    "hooks": "AOS extension key 'hooks' (skills-ref allows only the spec's fields)",
    "service-metadata-escape": "skills-ref does not read metadata; AOS rejects a metadata.service "
    "outside the skill directory",
    "metadata-not-mapping": "skills-ref does not check metadata's type; the spec says a mapping",
    "metadata-nested": "skills-ref str()s nested metadata values; the spec says string values",
    "allowed-tools-mapping": "skills-ref does not check allowed-tools' type",
}
"""Fixtures on which strict validation and ``skills_ref.validate`` disagree, on purpose."""


def _param(case: str) -> object:
    return pytest.param(case, id=case)


def _skill_md(case: str) -> Path:
    return FIXTURES / case / "SKILL.md"


def _messages(result: ParseResult) -> list[str]:
    return [str(d).replace(str(FIXTURES) + "/", "") for d in result.diagnostics]


def _loaded(case: str) -> Manifest:
    result = parse(_skill_md(case))
    assert result.manifest is not None, _messages(result)
    return result.manifest


def _skills_ref_accepts(skill_dir: Path) -> bool:
    try:
        return not skills_ref.validate(skill_dir)
    except UnicodeDecodeError:  # skills-ref 0.1.1 lets it escape: a rejection all the same
        return False


def _corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(
            f"the Agent Skills compatibility corpus is not at {CORPUS} "
            "(it lives in ../shared/testdata/agent-skills next to the repository, and is "
            "not copied into the project)"
        )
    return CORPUS


# -- the table --


def test_every_fixture_directory_is_in_the_table() -> None:
    on_disk = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
    assert on_disk == sorted(CASE_BY_ID)
    assert len(CASE_BY_ID) == len(CASES), "a case id is listed twice"
    assert set(DELIBERATE_DIFFERENCES) <= set(CASE_BY_ID)


@pytest.mark.parametrize("case", [_param(c.case) for c in CASES])
def test_lenient_loading(case: str) -> None:
    expected = CASE_BY_ID[case]
    result = parse(_skill_md(case))
    assert _messages(result) == list(expected.messages)
    assert (result.manifest is not None) == expected.loads
    level = "warning" if expected.loads else "error"
    assert [d.level for d in result.diagnostics] == [level] * len(result.diagnostics)


@pytest.mark.parametrize("case", [_param(c.case) for c in CASES])
def test_strict_validation(case: str) -> None:
    expected = CASE_BY_ID[case]
    result = parse(_skill_md(case), strict=True)
    assert _messages(result) == list(expected.messages)
    assert (result.manifest is not None) == expected.valid
    assert all(d.level == "error" for d in result.diagnostics)


def test_every_message_names_the_file() -> None:
    for case in CASES:
        for d in parse(_skill_md(case.case), strict=True).diagnostics:
            assert isinstance(d, Diagnostic)
            assert d.file == str(_skill_md(case.case))
            assert d.message


def test_fixture_bytes_are_exact() -> None:
    """Git must not normalise these (tests/fixtures/.gitattributes: ``* -text``)."""
    bom = _skill_md("bom").read_bytes()
    assert bom.startswith(b"\xef\xbb\xbf---\n")
    crlf = _skill_md("crlf").read_bytes()
    assert crlf.count(b"\r\n") == crlf.count(b"\n") == 10
    assert crlf.endswith(b"\r\n")
    assert not _skill_md("no-final-newline").read_bytes().endswith(b"\n")
    assert _skill_md("leading-blank-lines").read_bytes().startswith(b"\n   \n\n---\n")


# -- parsed values --


def test_minimal_manifest() -> None:
    assert _loaded("minimal-valid") == Manifest(
        name="minimal-valid",
        description="A fixture skill used by the SKILL.md parser tests.",
        body="# Fixture\n\nInstructions for the agent.",
    )


@pytest.mark.parametrize(
    ("case", "description", "body"),
    [
        ("bom", "Starts with a UTF-8 byte order mark.", "# Fixture\n\nInstructions for the agent."),
        ("crlf", "Every line ends with CRLF.", "# Fixture\n\nLine one.\nLine two."),
        (
            "leading-blank-lines",
            "Blank lines come before the frontmatter.",
            "# Fixture\n\nInstructions for the agent.",
        ),
        ("no-final-newline", "The last line has no newline.", "# Fixture\n\nLast line."),
    ],
)
def test_file_format_variants(case: str, description: str, body: str) -> None:
    manifest = _loaded(case)
    assert (manifest.name, manifest.description, manifest.body) == (case, description, body)
    assert manifest.extra == {}


def test_crlf_license_has_no_carriage_return() -> None:
    assert _loaded("crlf").license == "MIT"


def test_body_keeps_its_dashes() -> None:
    manifest = _loaded("body-dashes")
    assert manifest.body == (
        "# Fixture\n\nAbove the rule.\n\n---\n\nname: not-a-field\n\n---\n\nBelow the rules."
    )
    assert manifest.name == "body-dashes"
    assert manifest.extra == {}


def test_dashes_inside_frontmatter_values() -> None:
    manifest = _loaded("dashes-in-frontmatter-value")
    assert manifest.description == "Keeps a---b inside a quoted value."
    assert manifest.compatibility == "A block scalar line of dashes:\n---\nstays in the value.\n"
    assert manifest.license == "MIT"


@pytest.mark.parametrize(
    ("case", "tools"),
    [
        ("allowed-tools-space", ["Bash(git:*)", "Read", "Write"]),
        ("allowed-tools-comma", ["Read", "Write", "Bash(git:*)"]),
        ("allowed-tools-list", ["Read", "Write", "Bash(git:*)"]),
        ("allowed-tools-flow-list", ["Read", "Write"]),
        ("allowed-tools-comma-spaces", ["Bash(git add:*)", "Bash(git status:*)", "Read"]),
    ],
)
def test_allowed_tools(case: str, tools: list[str]) -> None:
    assert _loaded(case).allowed_tools == tools


def test_scalars_stay_strings() -> None:
    manifest = _loaded("coerced-scalars")
    assert manifest.license == "yes"
    assert manifest.metadata == {
        "version": "1.0",
        "flag": "yes",
        "nothing": "null",
        "date": "2025-01-01",
        "octal": "010",
    }


def test_service_path_is_normalised() -> None:
    assert _loaded("service-top").service == "bin/serve"
    manifest = _loaded("service-metadata")
    assert manifest.service == "bin/serve"
    assert manifest.metadata == {"service": "bin/serve"}


@pytest.mark.parametrize("case", ["scopes", "scopes-string"])
def test_scopes(case: str) -> None:
    assert _loaded(case).scopes == ["kernel.read", "session.read"]


def test_hooks() -> None:
    assert _loaded("hooks").hooks == {
        "tool.before": HookSettings(timeout=2.5, failure="fail-closed"),
        "skill.load": HookSettings(timeout=10.0),
        "compute.after": HookSettings(failure="fail-open"),
    }


def test_unknown_fields_are_kept() -> None:
    assert _loaded("unknown-field").extra == {"x-author": "someone"}


def test_length_limits_count_characters_not_bytes() -> None:
    description = _loaded("description-1024").description
    assert len(description) == 1024
    assert len(description.encode()) > 1024
    assert (
        len(_loaded("name-of-exactly-sixty-four-characters-the-longest-one-allowed-ok").name) == 64
    )
    assert len(_loaded("compatibility-500").compatibility or "") == 500


def test_lenient_loading_keeps_an_over_long_description() -> None:
    assert _loaded("description-too-long").description == "d" * 1025


def test_expected_name_replaces_the_directory_name() -> None:
    """A plugin skill's name is checked against its entry point, not its folder."""
    result = parse(_skill_md("name-mismatch"), strict=True, expected_name="other-name")
    assert result.diagnostics == []
    assert result.manifest is not None
    assert result.manifest.name == "other-name"


def test_service_through_a_symlink_out_of_the_skill_is_rejected(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    skill = tmp_path / "linked"
    skill.mkdir()
    (skill / "bin").symlink_to(outside, target_is_directory=True)
    skill_md = skill / "SKILL.md"
    skill_md.write_text("---\nname: linked\ndescription: Linked.\nservice: bin/serve\n---\n")
    for strict in (False, True):
        result = parse(skill_md, strict=strict)
        assert result.manifest is None
        assert [str(d) for d in result.diagnostics] == [
            f"{skill_md}: service: 'bin/serve' resolves outside the skill directory"
        ]


def test_a_file_that_is_not_utf8_is_broken(tmp_path: Path) -> None:
    """Built in tmp_path: ruff format reads every .md under tests and stops on non-UTF-8."""
    skill = tmp_path / "not-utf8"
    skill.mkdir()
    skill_md = skill / "SKILL.md"
    skill_md.write_bytes(b"---\nname: not-utf8\ndescription: Latin-1 caf\xe9.\n---\n")
    for strict in (False, True):
        result = parse(skill_md, strict=strict)
        assert result.manifest is None
        assert [(d.level, str(d)) for d in result.diagnostics] == [
            ("error", f"{skill_md}: not UTF-8 text (invalid continuation byte at byte 43)")
        ]
    assert not _skills_ref_accepts(skill)  # agrees with the oracle


def test_unicode_letters_in_a_name_are_a_deliberate_difference(tmp_path: Path) -> None:
    """The spec and the issue allow a-z only; skills-ref 0.1.1 allows any lowercase letter.

    Built in tmp_path so that the repository holds no non-ASCII path.
    """
    skill = tmp_path / "café"
    skill.mkdir()
    skill_md = skill / "SKILL.md"
    skill_md.write_text("---\nname: café\ndescription: A non-ASCII letter.\n---\n")
    result = parse(skill_md, strict=True)
    assert [str(d) for d in result.diagnostics] == [f"{skill_md}: name: 'café' {_ONLY_NAME_CHARS}"]
    assert result.manifest is None
    assert _skills_ref_accepts(skill)
    assert parse(skill_md).manifest is not None  # lenient: a warning


# -- the compatibility corpus --


@pytest.mark.parametrize("name", CORPUS_SKILLS)
def test_corpus_skill_loads(name: str) -> None:
    skill_md = _corpus() / name / "SKILL.md"
    result = parse(skill_md)
    assert result.manifest is not None, [str(d) for d in result.diagnostics]
    assert result.manifest.name == name
    if name == "claude-api":
        assert [(d.level, str(d)) for d in result.diagnostics] == [
            ("warning", f"{skill_md}: description: is 1068 characters; the limit is 1024")
        ]
    else:
        assert result.diagnostics == []


@pytest.mark.parametrize("name", CORPUS_SKILLS)
def test_corpus_skill_strict(name: str) -> None:
    skill_md = _corpus() / name / "SKILL.md"
    result = parse(skill_md, strict=True)
    if name == "claude-api":
        assert result.manifest is None
        assert [(d.level, str(d)) for d in result.diagnostics] == [
            ("error", f"{skill_md}: description: is 1068 characters; the limit is 1024")
        ]
    else:
        assert result.manifest is not None
        assert result.diagnostics == []


def test_corpus_is_complete() -> None:
    corpus = _corpus()
    assert sorted(p.name for p in corpus.iterdir() if p.is_dir()) == list(CORPUS_SKILLS)
    assert all((corpus / name / "SKILL.md").is_file() for name in CORPUS_SKILLS)


# -- the oracle: skills-ref --


@pytest.mark.parametrize("name", CORPUS_SKILLS)
def test_oracle_agrees_on_the_corpus(name: str) -> None:
    skill_dir = _corpus() / name
    ours = parse(skill_dir / "SKILL.md", strict=True).manifest is not None
    assert ours == _skills_ref_accepts(skill_dir)


@pytest.mark.parametrize("case", [_param(c.case) for c in CASES])
def test_oracle_on_fixtures(case: str) -> None:
    ours = parse(_skill_md(case), strict=True).manifest is not None
    theirs = _skills_ref_accepts(FIXTURES / case)
    if case in DELIBERATE_DIFFERENCES:
        assert ours != theirs, f"no longer a difference: {DELIBERATE_DIFFERENCES[case]}"
    else:
        assert ours == theirs, "strict validation and skills-ref disagree"
