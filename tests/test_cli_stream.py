"""How ``aos run`` streams a reasoning model: the reasoning as a labelled dim block
on a terminal, never in a pipe unless asked (``--reasoning``)."""

from __future__ import annotations

import json
import re

from test_cli_output import in_a_terminal
from test_main_job_cli import Project, llm, project

from aos.testing import Reply, ScriptedLLM

__all__ = ["llm", "project"]  # the fixtures, shared with the main job's tests

THOUGHT = "The user wants a number. 42 it is."


def test_a_pipe_gets_the_answer_alone(project: Project, llm: ScriptedLLM) -> None:
    llm.add(Reply.text("The answer is 42.", reasoning=THOUGHT, signature="sig"))
    result = project.aos("run", "the answer?")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "The answer is 42.\n"


def test_reasoning_when_asked_is_a_block_apart(project: Project, llm: ScriptedLLM) -> None:
    llm.add(Reply.text("The answer is 42.", reasoning=THOUGHT))
    result = project.aos("run", "--reasoning", "the answer?")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"thinking: {THOUGHT}\n\nThe answer is 42.\n"


def test_a_terminal_shows_the_reasoning_dim_and_labelled(
    project: Project, llm: ScriptedLLM
) -> None:
    llm.add(Reply.text("The answer is 42.", reasoning=THOUGHT))
    shown = in_a_terminal(project, "run", "the answer?")
    assert "\x1b[2m\x1b[3mthinking: " in shown  # dim and italic
    text = re.sub(r"\x1b\[[0-9;]*m", "", shown)
    assert text.startswith(f"thinking: {THOUGHT}\r\n\r\nThe answer is 42.\r\n"), text
    llm.add(Reply.text("The answer is 42.", reasoning=THOUGHT))
    assert "thinking" not in in_a_terminal(project, "run", "--no-reasoning", "again?")


def test_a_rate_limit_wait_is_said_on_stderr(project: Project, llm: ScriptedLLM) -> None:
    llm.add(Reply.error(429, "Rate limit exceeded", retry_after=1), Reply.text("Here."))
    result = project.aos("run", "hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Here.\n"
    assert "aos: rate limited by the model server: retrying in 1 s\n" in result.stderr
    assert llm.requests[1].time - llm.requests[0].time >= 1  # Retry-After honoured


def test_a_broken_stream_is_kept_shown_and_retried(project: Project, llm: ScriptedLLM) -> None:
    llm.add(
        Reply.stream_error("Provider disconnected", after_text="The answer is"),
        Reply.text("The answer is 42."),
    )
    result = project.aos("run", "hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "The answer is\n[the reply broke off here]\nThe answer is 42.\n"
    assert "the model server failed (" in result.stderr
    session = result.stderr.strip().split()[-1]
    history = json.loads(project.aos("session", "history", session, "--json").stdout)
    replies = [
        (f["text"], f.get("incomplete", False)) for f in history if f["kind"] == "message.assistant"
    ]
    assert replies == [("The answer is", True), ("The answer is 42.", False)]
    assert llm.requests[1].body == llm.requests[0].body  # the same request again
