"""aos-frontend in a real headless browser: playwright driving Debian's chromium
against a real daemon, the skill's real service and the scripted model.

Needs ``playwright`` (the dev extra) and ``/usr/bin/chromium`` (``apt-get install
chromium``; .ci/run installs it). Elsewhere the test skips and says so; in CI
(``CI=true``) a missing browser is a failure.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aos_sdk import Client
from conftest import IN_CI, copy_skill, poll_until
from test_frontend import frontend, ui_address

from aos.daemon import Daemon
from aos.facts import Usage
from aos.runtimelog import LogEntry
from aos.testing import Reply, ScriptedLLM

pytestmark = pytest.mark.anyio

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCRIPT = "<script>alert(1)</script>"
ANSWER = "The output shows a script tag, as text."
TIMEOUT_MS = 15_000
SKILLS = "aos-context,aos-skill,aos-a2a,aos-frontend,my-guard"


def guard_running(daemon: Daemon) -> bool:
    assert daemon.kernel is not None
    assert daemon.kernel.services is not None
    return any(
        s["skill"] == "my-guard" and s["state"] == "running"
        for s in daemon.kernel.services.status()
    )


def chromium_path() -> str | None:
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")


def browser_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed: pip install -e '.[dev]'"
    if chromium_path() is None:
        return f"no chromium at {CHROMIUM}: apt-get install -y chromium"
    return None


def model(body: dict[str, Any]) -> Reply:
    """The scripted model: decides from the last message of each request."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        if str(last["content"]).startswith("rejected by"):
            return Reply.text("The guard stopped it.")
        return Reply.text(ANSWER, chunk=2, delay=0.2)
    text = str(last["content"])
    if text.startswith("Show me"):
        return Reply.tool_call(f"printf '{SCRIPT}'", text="Running it.", chunk=2)
    if text.startswith("Drop"):
        return Reply.tool_call("echo 'DROP TABLE users'")  # harmless even if it ran
    if text.startswith("Wait"):
        return Reply.tool_call("sleep 30")
    return Reply.text("I do not know that one.")


async def test_the_ui_in_a_real_browser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.async_api import expect

    project = tmp_path / "project"
    broken = project / "skills" / "half-done"
    broken.mkdir(parents=True)
    (broken / "SKILL.md").write_text("---\nname: half-done\n---\nno description\n")
    copy_skill("my-guard", project)  # rejects commands with DROP TABLE (tool.before)
    screenshot = tmp_path / "chat.png"

    with ScriptedLLM(default=model) as llm:
        async with (
            frontend(project, monkeypatch, llm, {"AOS_DEFAULT_SKILLS": SKILLS}) as (
                daemon,
                client,
            ),
            opened_page(daemon) as (page, errors),  # with its token: the cookie keeps it
        ):
            dialogs: list[str] = []

            async def dismiss(dialog: Any) -> None:
                dialogs.append(dialog.message)
                await dialog.dismiss()

            page.on("dialog", dismiss)

            # the agents page shows the default agent (created by the service)
            tree = page.locator("#agent-tree")
            await expect(tree.locator(".agent-name", has_text="default")).to_be_visible()
            assert "token" not in page.url  # the address bar no longer shows it

            # create an agent under it
            await page.fill("#agent-name", "browser-agent")
            await page.select_option("#agent-parent", label=await default_label(page))
            await page.fill("#agent-model", "m")
            await page.click("#create-agent button[type=submit]")
            created = tree.locator("li li .agent-name", has_text="browser-agent")
            await expect(created).to_be_visible()  # nested under default
            await created.click()
            await expect(page.locator("#agent-page h1")).to_contain_text("browser-agent")
            await expect(page.locator("#agent-usage")).to_have_text(
                "0 model calls · 0 in + 0 out tokens"
            )

            # open a session and chat
            await page.fill("#session-title", "browser chat")
            await page.click("#create-session button[type=submit]")
            await expect(page.locator("#session-page")).to_be_visible()
            await page.fill("#message", "Show me the script")
            await page.click("#send")

            transcript = page.locator("#transcript")
            await expect(transcript.locator(".bubble.user .text")).to_have_text(
                "Show me the script"
            )
            tool = transcript.locator(".tool[data-status=ok]")
            await expect(tool.locator(".tool-command")).to_have_text(f"printf '{SCRIPT}'")
            await expect(tool.locator(".badge")).to_have_text("exit 0")
            await expect(tool.locator("pre.output")).to_have_text(SCRIPT)  # as text
            answer = transcript.locator(".bubble.assistant:not(.pending)", has_text=ANSWER)
            await expect(answer).to_be_visible()
            # the tokens of its two model calls, counted as they were recorded
            await expect(page.locator("#session-usage")).to_contain_text("2 model calls · ")
            # it arrived token by token (two characters a delta) before the fact
            deltas = int(await answer.get_attribute("data-deltas") or 0)
            assert deltas >= len(ANSWER) // 2
            assert await transcript.locator("script").count() == 0
            await expect(page.locator("#session-status")).to_have_attribute("data-status", "idle")

            # a call a skill rejects: marked with the skill and its reason
            await poll_until(lambda: guard_running(daemon))
            await page.fill("#message", "Drop the table")
            await page.click("#send")
            rejected = transcript.locator(".tool[data-status=rejected]")
            await expect(rejected.locator(".badge")).to_have_text("rejected by my-guard")
            await expect(rejected.locator(".tool-reason")).to_have_text("blocked: DROP TABLE")
            await expect(transcript.locator(".bubble", has_text="The guard")).to_be_visible()

            # an a2a message arrives live, with its sender and mode
            session = await page.locator("#session-page").get_attribute("data-session-id")
            async with Client(daemon.paths.control_socket, token="") as admin:
                agents = await admin.call("agent.list", {})
                default = next(a for a in agents if a["name"] == "default")
                await admin.call(
                    "session.append",
                    {
                        "id": session,
                        "fact": {
                            "kind": "a2a.message",
                            "message_id": "msg_1",
                            "from_agent": default["id"],
                            "to_agent": "agt_x",
                            "mode": "notify",
                            "text": "FYI <img src=x onerror=alert(2)>",
                        },
                    },
                )
            a2a = transcript.locator(".bubble.a2a")
            await expect(a2a.locator(".who")).to_have_text("a2a from default · notify just now")
            await expect(a2a.locator(".text")).to_have_text("FYI <img src=x onerror=alert(2)>")
            assert await transcript.locator("img").count() == 0

            # a long command, interrupted from the page
            await page.fill("#message", "Wait for it")
            await page.click("#send")
            sleeping = transcript.locator(".tool", has_text="sleep 30")
            await expect(sleeping.locator(".badge")).to_have_text("running")
            await expect(page.locator("#interrupt")).to_be_enabled()
            await page.click("#interrupt")
            await expect(sleeping).to_have_attribute("data-status", "interrupted", timeout=5000)
            await expect(sleeping.locator(".badge")).to_have_text("interrupted")
            await expect(transcript.locator(".note[data-status=interrupted]")).to_be_visible()
            await expect(page.locator("#interrupt")).to_be_disabled()

            # a reload loses nothing: the page renders from history
            await page.reload()
            await expect(transcript.locator("pre.output").first).to_have_text(SCRIPT)
            await expect(transcript.locator(".tool[data-status=interrupted]")).to_be_visible()
            await expect(transcript.locator(".bubble.assistant", has_text=ANSWER)).to_be_visible()
            await page.screenshot(path=str(screenshot), full_page=True)

            # the skills page shows the broken skill and why
            await page.goto(f"{client.base_url}#/skills")
            row = page.locator("tr[data-skill=half-done]")
            await expect(row.locator(".badge")).to_have_text("broken")
            await expect(row.locator(".skill-reason")).to_contain_text("description")
            frontend_row = page.locator("tr[data-skill=aos-frontend]")
            await expect(frontend_row.locator(".badge")).to_have_text("active")

            # hooks in call order, and the runtime log
            await page.goto(f"{client.base_url}#/hooks")
            assemble = page.locator(".hook[data-hook='session.assemble']")
            await expect(assemble.locator("ol.impls li").first).to_contain_text("aos-context")
            await page.goto(f"{client.base_url}#/log")
            await expect(page.locator("#log tbody tr").first).to_be_visible()

            # the nodes on the database: this one alone, on SQLite
            await page.goto(f"{client.base_url}#/nodes")
            assert daemon.kernel is not None
            node = page.locator(f"tr[data-node='{daemon.kernel.node_id}']")
            await expect(node).to_contain_text("(this one)")
            await expect(node.locator(".badge")).to_have_text("running")
            await expect(page.locator("#cluster-summary")).to_contain_text("One node")

            assert dialogs == []  # no script ever ran
            assert errors == []
    with capsys.disabled():
        print(f"\nscreenshot of the chat page: {screenshot}")
    assert screenshot.stat().st_size > 0


@contextlib.asynccontextmanager
async def ui(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    llm: ScriptedLLM,
    skills: str = "aos-context,aos-frontend",
) -> AsyncIterator[tuple[Daemon, httpx.AsyncClient]]:
    """A daemon of an empty project (``skills`` its default skills) whose UI serves,
    and an HTTP client of it (``frontend``)."""
    project = tmp_path / "project"
    (project / "skills").mkdir(parents=True)
    async with frontend(project, monkeypatch, llm, {"AOS_DEFAULT_SKILLS": skills}) as served:
        yield served


async def default_label(page: Any) -> str:
    options = await page.locator("#agent-parent option").all_text_contents()
    [label] = [o for o in options if o.startswith("default (")]
    return label


@contextlib.asynccontextmanager
async def opened_page(daemon: Daemon) -> AsyncIterator[tuple[Any, list[str]]]:
    """Chromium with one page opened at the UI's address (with its token, as `aos
    status` prints it), and the page's errors as they come."""
    missing = browser_missing()
    if missing:
        if IN_CI:
            pytest.fail(f"CI must run the browser tests: {missing}")
        pytest.skip(missing)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(await ui_address(daemon))
            yield page, errors
        finally:
            await browser.close()


async def test_tool_blocks_stay_in_their_turn_when_call_ids_repeat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Providers reuse call ids (``bash:0`` in every turn): three turns, each block
    keeps its own command and output, live and after a reload."""
    from playwright.async_api import expect

    turns = (1, 2, 3)
    replies = [
        reply
        for n in turns
        for reply in (Reply.tool_call(f"echo turn{n}", id="bash:0"), Reply.text(f"done {n}"))
    ]

    async def blocks_in_order(page: Any) -> None:
        tools = page.locator("#transcript .tool")
        await expect(tools).to_have_count(len(turns))
        for i, n in enumerate(turns):
            await expect(tools.nth(i).locator(".tool-command")).to_have_text(f"echo turn{n}")
            await expect(tools.nth(i).locator("pre.output")).to_have_text(f"turn{n}\n")

    with ScriptedLLM(*replies) as llm:
        async with ui(tmp_path, monkeypatch, llm) as (daemon, client):
            async with Client(daemon.paths.control_socket, token="") as admin:
                agent = await admin.call("agent.create", {"name": "repeater"})
                session = await admin.call("session.create", {"agent_id": agent["agent"]["id"]})
            async with opened_page(daemon) as (page, errors):
                await page.goto(f"{client.base_url}#/sessions/{session['id']}")
                transcript = page.locator("#transcript")
                for n in turns:
                    await page.fill("#message", f"turn {n}")
                    await page.click("#send")
                    done = transcript.locator(
                        ".bubble.assistant:not(.pending)", has_text=f"done {n}"
                    )
                    await expect(done).to_be_visible()
                await blocks_in_order(page)  # live
                await page.reload()
                await blocks_in_order(page)  # from the history
                assert errors == []


async def test_the_chat_for_people_keys_times_children_and_the_newest_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Enter sends and Shift+Enter is a new line; Esc interrupts after a confirmation;
    every message has its time; the agent page lists its children; a long session
    opens at its newest turn."""
    from playwright.async_api import expect

    with ScriptedLLM(Reply.text("first answer"), Reply.tool_call("sleep 30")) as llm:
        async with ui(tmp_path, monkeypatch, llm) as (daemon, client):
            async with Client(daemon.paths.control_socket, token="") as admin:
                parent = (await admin.call("agent.create", {"name": "elder"}))["agent"]
                await admin.call("agent.create", {"name": "younger", "parent": parent["id"]})
                long = await admin.call("session.create", {"agent_id": parent["id"]})
                for i in range(450):  # taller than the window, longer than its first window
                    fact = {"kind": "message.user", "text": f"note {i}"}
                    await admin.call("session.append", {"id": long["id"], "fact": fact})
                chat = await admin.call("session.create", {"agent_id": parent["id"]})
            async with opened_page(daemon) as (page, errors):
                await page.goto(f"{client.base_url}#/agents/{parent['id']}")
                await expect(page.locator("#agent-children")).to_have_text("younger")

                await page.goto(f"{client.base_url}#/sessions/{long['id']}")
                newest = page.locator("#transcript .bubble.user", has_text="note 449")
                await expect(newest).to_be_in_viewport()
                await expect(newest.locator("time.when")).to_have_text("just now")
                bubbles = page.locator("#transcript .bubble.user")
                await expect(bubbles).to_have_count(400)  # the newest window
                await page.click("#earlier")
                await expect(bubbles).to_have_count(450)
                await expect(bubbles.first).to_have_text(re.compile("note 0$"))
                await expect(page.locator("#earlier")).to_be_hidden()
                await expect(newest).not_to_be_in_viewport()  # the place kept: above it

                # it follows what comes only when the person is at the newest turn
                async def append(text: str) -> None:
                    fact = {"kind": "message.user", "text": text}
                    async with Client(daemon.paths.control_socket, token="") as admin:
                        await admin.call("session.append", {"id": long["id"], "fact": fact})

                await append("while reading above")
                arrived = page.locator(".bubble.user", has_text="while reading above")
                await expect(arrived).to_have_count(1)
                await expect(arrived).not_to_be_in_viewport()
                await arrived.scroll_into_view_if_needed()
                await page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
                await append("while at the bottom")
                await expect(
                    page.locator(".bubble.user", has_text="at the bottom")
                ).to_be_in_viewport()

                await page.goto(f"{client.base_url}#/sessions/{chat['id']}")
                message = page.locator("#message")
                await message.click()
                await page.keyboard.type("line one")
                await page.keyboard.press("Shift+Enter")
                await page.keyboard.type("line two")
                await page.keyboard.press("Enter")
                sent = page.locator("#transcript .bubble.user .text")
                await expect(sent).to_have_text("line one\nline two")
                await expect(
                    page.locator(".bubble.assistant", has_text="first answer")
                ).to_be_visible()

                page.on("dialog", lambda dialog: dialog.accept())
                await message.fill("now wait")
                await page.keyboard.press("Enter")
                await expect(page.locator(".tool[data-status]")).to_have_count(0)
                await expect(page.locator("#session-status")).to_have_attribute(
                    "data-status", "running"
                )
                await expect(page.locator(".tool .badge", has_text="running")).to_be_visible()
                await message.press("Escape")
                await expect(page.locator(".tool[data-status=interrupted]")).to_be_visible()
                await expect(page.locator("#session-status")).to_have_attribute(
                    "data-status", "idle"
                )
                assert errors == []


async def test_the_context_view_shows_what_the_model_sees_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.async_api import expect

    with ScriptedLLM(Reply.text("the answer is 42")) as llm:
        async with ui(tmp_path, monkeypatch, llm) as (daemon, client):
            async with Client(daemon.paths.control_socket, token="") as admin:
                agent = (await admin.call("agent.create", {"name": "thinker"}))["agent"]
                session = await admin.call("session.create", {"agent_id": agent["id"]})
                await admin.call("session.dispatch", {"id": session["id"], "message": "what?"})
                context = await admin.call("session.context", {"id": session["id"]})
            async with opened_page(daemon) as (page, errors):
                await page.goto(f"{client.base_url}#/sessions/{session['id']}")
                await page.click("text=the context the model sees next")
                shown = page.locator("#context-page .context-message")
                await expect(shown).to_have_count(len(context))
                await expect(shown.first).to_have_attribute("data-role", "system")
                await expect(shown.first.locator("pre")).to_contain_text(
                    str(context[0]["content"])[:40]
                )
                await expect(shown.nth(1)).to_contain_text("what?")
                await expect(shown.nth(2)).to_contain_text("the answer is 42")
                await expect(page.locator("#context-total")).to_contain_text(
                    f"{len(context)} messages · about "
                )
                # against the node's budget, with the skills behind the system prompt
                await expect(page.locator("#context-total")).to_contain_text(
                    f"of the {daemon.config.aoscb.limits.context_budget:,}-token budget"
                )
                await expect(page.locator("#context-skills")).to_have_text(
                    "aos-context, aos-frontend"
                )
                await expect(page.locator("#context-compactions")).to_contain_text("never")

                # where compaction happened: the facts through it reach the model summarized
                async with Client(daemon.paths.control_socket, token="") as admin:
                    compacted = {
                        "kind": "context.compacted",
                        "summary": "asked, answered",
                        "through_seq": 3,
                    }
                    await admin.call("session.append", {"id": session["id"], "fact": compacted})
                    context = await admin.call("session.context", {"id": session["id"]})
                await page.reload()
                await expect(page.locator("#context-compactions")).to_contain_text(
                    "1 time; the last through fact #3"
                )
                await expect(shown.nth(1)).to_contain_text("asked, answered")
                await expect(shown).to_have_count(len(context))
                assert errors == []


async def test_a_failed_run_is_shown_failed_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.async_api import expect

    with ScriptedLLM(Reply.text("fine"), Reply.error(400, "the prompt is malformed")) as llm:
        async with ui(tmp_path, monkeypatch, llm) as (daemon, client):
            async with Client(daemon.paths.control_socket, token="") as admin:
                agent = (await admin.call("agent.create", {"name": "unlucky"}))["agent"]
                outcomes = []
                for message in ("works", "breaks"):
                    session = await admin.call("session.create", {"agent_id": agent["id"]})
                    outcomes.append(
                        await admin.call(
                            "session.dispatch", {"id": session["id"], "message": message}
                        )
                    )
                good, bad = outcomes
                assert (good["status"], bad["status"]) == ("completed", "failed")
                scb = await admin.call("session.get", {"id": bad["session_id"]})
                assert scb["outcome"] == f"failed: {bad['error']}"
            async with opened_page(daemon) as (page, errors):
                await page.goto(f"{client.base_url}#/agents/{agent['id']}")
                failed = page.locator(f"tr[data-session-id='{bad['session_id']}'] .session-state")
                await expect(failed.locator(".badge")).to_have_text("failed")
                await expect(failed.locator(".outcome-reason")).to_contain_text("malformed")
                done = page.locator(f"tr[data-session-id='{good['session_id']}'] .session-state")
                await expect(done.locator(".badge")).to_have_text("completed")
                assert errors == []


async def test_an_agent_edited_in_the_page_uses_its_new_model_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent page's form changes the model and skills through agent.update (as
    the UI's service: audited); the next dispatch asks the new model."""
    from playwright.async_api import expect

    with ScriptedLLM(Reply.text("from the new model")) as llm:
        async with ui(tmp_path, monkeypatch, llm) as (daemon, client):
            async with Client(daemon.paths.control_socket, token="") as admin:
                agent = (await admin.call("agent.create", {"name": "editable"}))["agent"]
            async with opened_page(daemon) as (page, errors):
                await page.goto(f"{client.base_url}#/agents/{agent['id']}")
                await page.fill("#edit-model", "other-model")
                await page.fill("#edit-skills", "aos-skill")
                await page.click("#edit-agent button[type=submit]")
                await expect(page.locator("#edit-model")).to_have_value("other-model")
                await expect(page.locator("#agent-page")).to_contain_text("aos-skill")
                assert errors == []
            async with Client(daemon.paths.control_socket, token="") as admin:
                info = await admin.call("agent.get", {"id": agent["id"]})
                assert info["agent"]["config"] == {"model": "other-model", "skills": ["aos-skill"]}
                session = await admin.call("session.create", {"agent_id": agent["id"]})
                await admin.call("session.dispatch", {"id": session["id"], "message": "hi"})
                log = await admin.call("log.read", {"kind": "syscall", "newest_first": True})
            assert llm.requests[-1].body["model"] == "other-model"
            assert any(
                "agent.update" in e["message"] and "service:aos-frontend" in e["message"]
                for e in log
            ), [e["message"] for e in log]


async def test_sessions_people_can_scan_filter_search_and_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sessions page: titles from the first message, status with the outcome,
    tokens and cost; filters by agent and status, a search of titles and messages,
    renaming; the chat's turn shows its model, tokens, cost and duration; the agent
    page shows the a2a messages between an agent and its children."""
    from playwright.async_api import expect

    priced = Usage(prompt_tokens=1200, completion_tokens=34, cost=0.0021)
    replies = [
        Reply.tool_call("ls | wc -l", usage=priced),
        Reply.text("There are 3 files.", usage=priced),
        Reply.error(400, "the prompt is malformed"),
    ]
    with ScriptedLLM(*replies) as llm:
        async with ui(tmp_path, monkeypatch, llm) as (daemon, client):
            async with Client(daemon.paths.control_socket, token="") as admin:
                alpha = (await admin.call("agent.create", {"name": "alpha"}))["agent"]
                beta = (await admin.call("agent.create", {"name": "beta", "parent": alpha["id"]}))[
                    "agent"
                ]
                counted = await admin.call("session.create", {"agent_id": alpha["id"]})
                await admin.call(
                    "session.dispatch", {"id": counted["id"], "message": "Count the files\nplease"}
                )
                whales = await admin.call("session.create", {"agent_id": beta["id"]})
                await admin.call(
                    "session.dispatch", {"id": whales["id"], "message": "Tell me about whales"}
                )
                await admin.call("session.create", {"agent_id": beta["id"], "title": "empty one"})
                await admin.call(
                    "session.append",
                    {
                        "id": whales["id"],
                        "fact": {
                            "kind": "a2a.message",
                            "message_id": "msg_up",
                            "from_agent": alpha["id"],
                            "to_agent": beta["id"],
                            "from_session": counted["id"],
                            "mode": "notify",
                            "text": "the file count is 3",
                        },
                    },
                )
            async with opened_page(daemon) as (page, errors):
                await page.goto(f"{client.base_url}#/sessions")
                rows = page.locator("#sessions-page tbody tr")
                await expect(rows).to_have_count(3)
                row = page.locator(f"tr[data-session-id='{counted['id']}']")
                await expect(row.locator("td").first).to_contain_text("Count the files")
                await expect(row.locator(".session-state .badge")).to_have_text("completed")
                await expect(row.locator(".session-tokens")).to_have_text("2,400 in + 68 out")
                await expect(row.locator(".session-cost")).to_have_text("$0.0042")
                failed = page.locator(f"tr[data-session-id='{whales['id']}']")
                await expect(failed.locator(".outcome-reason")).to_contain_text("malformed")

                await page.select_option("#sessions-agent", label="beta")
                await expect(rows).to_have_count(2)
                await page.select_option("#sessions-status", "failed")
                await expect(rows).to_have_count(1)
                await expect(rows.first).to_have_attribute("data-session-id", whales["id"])
                await page.select_option("#sessions-agent", "")
                await page.select_option("#sessions-status", "")
                await page.fill("#sessions-search", "WHALES")  # a message's text
                await page.press("#sessions-search", "Enter")
                await expect(rows).to_have_count(1)
                await expect(rows.first).to_have_attribute("data-session-id", whales["id"])
                assert "search=WHALES" in page.url  # the filters stay in the address

                # the chat: the turn's model, tokens, cost and duration; renaming
                await page.goto(f"{client.base_url}#/sessions/{counted['id']}")
                turn = page.locator("#transcript .note[data-status=completed] .turn-meta")
                await expect(turn).to_contain_text("m · 2,400 in + 68 out tokens · $0.0042 · ")
                await expect(turn).to_have_text(re.compile(r" \d+\.\d s$"))
                await page.click("#rename")
                await page.fill("#rename-input", "File census")
                await page.press("#rename-input", "Enter")
                await expect(page.locator("#session-title-text")).to_have_text("File census")
                await page.goto(f"{client.base_url}#/sessions?search=census")
                await expect(rows).to_have_count(1)

                # the a2a messages between alpha and its child, with both sessions
                await page.goto(f"{client.base_url}#/agents/{alpha['id']}")
                message = page.locator("#agent-a2a tr[data-message-id=msg_up]")
                await expect(message.locator(".a2a-text")).to_have_text("the file count is 3")
                await expect(message.locator(".a2a-from a").last).to_have_attribute(
                    "href", f"#/sessions/{counted['id']}"
                )
                await expect(message.locator(".a2a-to a").last).to_have_attribute(
                    "href", f"#/sessions/{whales['id']}"
                )
                assert errors == []
            async with Client(daemon.paths.control_socket, token="") as admin:
                log = await admin.call("log.read", {"kind": "syscall", "search": "session.update"})
            assert any("service:aos-frontend" in e["message"] for e in log), log


async def test_agents_are_created_edited_moved_and_archived_with_confirmation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Create an agent with skills and a system-prompt addition; edit its prompt and
    move it under another parent; archiving asks first (dismissed: nothing happens)."""
    from playwright.async_api import expect

    with ScriptedLLM() as llm:
        async with ui(tmp_path, monkeypatch, llm) as (daemon, _client):
            async with Client(daemon.paths.control_socket, token="") as admin:
                home = (await admin.call("agent.create", {"name": "home"}))["agent"]
            async with opened_page(daemon) as (page, errors):
                answers: list[bool] = []

                async def answer(dialog: Any) -> None:
                    await (dialog.accept() if answers.pop(0) else dialog.dismiss())

                page.on("dialog", answer)
                await page.fill("#agent-name", "writer")
                await page.fill("#agent-skills", "aos-skill")
                await page.fill("#agent-prompt", "Write in haiku.")
                await page.click("#create-agent button[type=submit]")
                await page.locator("#agent-tree .agent-name", has_text="writer").click()
                await expect(page.locator(".prompt-text")).to_have_text("Write in haiku.")

                await page.fill("#edit-prompt", "Write in limericks.")
                await page.select_option("#edit-parent", label=f"home ({home['id']})")
                await page.click("#edit-agent button[type=submit]")
                await expect(page.locator(".prompt-text")).to_have_text("Write in limericks.")
                await expect(page.locator("#agent-page dl")).to_contain_text("home")

                answers.append(False)
                await page.click("#archive-agent")
                await expect(page.locator("#agent-page h1")).not_to_contain_text("archived")
                answers.append(True)
                await page.click("#archive-agent")
                await expect(page.locator("#agents-page")).to_be_visible()
                assert answers == [] and errors == []
            async with Client(daemon.paths.control_socket, token="") as admin:
                [writer] = [a for a in await admin.call("agent.list", {}) if a["name"] == "writer"]
            assert writer["parent"] == home["id"]
            assert writer["status"] == "archived"
            assert writer["config"] == {"skills": ["aos-skill"], "prompt": "Write in limericks."}


async def test_the_log_pages_filters_and_searches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.async_api import expect

    with ScriptedLLM() as llm:
        async with ui(tmp_path, monkeypatch, llm) as (daemon, client):
            kernel = daemon.kernel
            assert kernel is not None
            for i in range(250):
                kernel.log(
                    LogEntry(
                        kind="test.record",
                        message=f"record {i}" + (" needle" if i == 17 else ""),
                        level="warning" if i % 50 == 0 else "info",
                        data={"skill": "aos-context"} if i % 2 else {},
                    )
                )
            async with Client(daemon.paths.control_socket, token="") as admin:
                await admin.call("log.read", {"limit": 1})  # committed
            async with opened_page(daemon) as (page, errors):
                await page.goto(f"{client.base_url}#/log?kind=test.record")
                rows = page.locator("#log tbody tr")
                await expect(rows).to_have_count(100)
                await expect(rows.first).to_contain_text("record 249")
                await page.click("#log-older")
                await expect(rows.first).to_contain_text("record 149")
                await page.click("#log-older")
                await expect(rows).to_have_count(50)
                await expect(page.locator("#log-older")).to_be_disabled()
                await page.click("#log-newest")
                await expect(rows.first).to_contain_text("record 249")

                await page.select_option("#log-level", "warning")
                await expect(rows).to_have_count(5)
                await page.select_option("#log-level", "")
                await page.select_option("#log-skill", "aos-context")
                await expect(rows.first).to_contain_text("record 249")
                await page.select_option("#log-skill", "")
                await page.fill("#log-search", "NEEDLE")
                await page.press("#log-search", "Enter")
                await expect(rows).to_have_count(1)
                await expect(rows.first).to_contain_text("record 17 needle")
                assert errors == []


SCREENSHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"
"""Where the screenshot test writes every page at 1280 and 420 px (``build/`` is
ignored by git): open them to look at the UI."""


async def test_every_page_at_1280_and_420_px_with_screenshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each page renders without a page error and, at 420 px, without a horizontal
    scroll bar; a screenshot of each at both widths lands in build/screenshots."""
    replies = [Reply.tool_call("ls -la"), Reply.text("Here is the listing.")]
    with ScriptedLLM(*replies) as llm:
        async with ui(tmp_path, monkeypatch, llm, "aos-context,aos-a2a,aos-frontend") as (
            daemon,
            client,
        ):
            async with Client(daemon.paths.control_socket, token="") as admin:
                lead = (await admin.call("agent.create", {"name": "lead"}))["agent"]
                await admin.call("agent.create", {"name": "helper", "parent": lead["id"]})
                session = await admin.call("session.create", {"agent_id": lead["id"]})
                await admin.call(
                    "session.dispatch", {"id": session["id"], "message": "List the workspace"}
                )
            pages = {
                "agents": "#/agents",
                "agent": f"#/agents/{lead['id']}",
                "sessions": "#/sessions",
                "chat": f"#/sessions/{session['id']}",
                "context": f"#/sessions/{session['id']}/context",
                "skills": "#/skills",
                "hooks": "#/hooks",
                "log": "#/log",
                "nodes": "#/nodes",
            }
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            async with opened_page(daemon) as (page, errors):
                for width in (1280, 420):
                    await page.set_viewport_size({"width": width, "height": 900})
                    for name, hash_ in pages.items():
                        await page.goto(f"{client.base_url}{hash_}")
                        await page.locator("#main .page > [id$=-page]").wait_for()
                        overflow = await page.evaluate(
                            "document.documentElement.scrollWidth - window.innerWidth"
                        )
                        assert overflow <= 0 or width > 420, f"{name} at {width} px: {overflow}"
                        await page.screenshot(
                            path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True
                        )
                assert errors == []
    assert len(list(SCREENSHOTS.glob("*.png"))) >= 2 * len(pages)
