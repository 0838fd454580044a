"""aos-frontend over HTTP: a real daemon, the skill's real service serving on a
free port, the scripted model; requests with httpx. Every request needs the UI's
access token: the tests learn its address as `aos status` does (the service's
``address`` method, as admin) and open it once, as a person would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aos_sdk import Client
from conftest import REPO, poll_until, running_daemon

from aos.daemon import Daemon
from aos.testing import Reply, ScriptedLLM, wait_for_http
from aos_stdskills.aos_frontend import access

pytestmark = pytest.mark.anyio

SKILL = "aos-frontend"
FRONTEND = REPO / "aos_stdskills" / "aos_frontend"
AOS = str(Path(sys.executable).with_name("aos"))
SCOPES = [
    "agent.read",
    "agent.write",
    "session.read",
    "session.write",
    "session.dispatch",
    "skill.read",
    "skill.admin",
    "hook.read",
    "log.read",
    "events.subscribe",
    "kernel.read",  # the nodes page (kernel.status)
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def frontend_status(daemon: Daemon) -> dict[str, Any] | None:
    assert daemon.kernel is not None
    assert daemon.kernel.services is not None
    return next((s for s in daemon.kernel.services.status() if s["skill"] == SKILL), None)


async def ui_address(daemon: Daemon) -> str:
    """The UI's address with its token, as `aos status` learns it: the service's
    ``address`` method, called as the node's admin."""
    async with Client(daemon.paths.control_socket, token="") as admin:
        found = await admin.call("skill.call", {"skill": SKILL, "method": "address"})
    return found["url"]


@contextlib.asynccontextmanager
async def frontend(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    llm: ScriptedLLM,
    settings: dict[str, str] | None = None,
    *,
    opened: bool = True,
    **env: str,
) -> AsyncIterator[tuple[Daemon, httpx.AsyncClient]]:
    """A daemon (with ``settings`` as its configuration) whose aos-frontend serves
    on a free port, and an HTTP client of it, which has opened the UI's address
    with its token once (its cookie set) unless not ``opened``. ``env`` goes into
    the process environment, which the service reads."""
    port = free_port()
    monkeypatch.setenv("AOS_FRONTEND_PORT", str(port))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    base_url = f"http://127.0.0.1:{port}"
    async with running_daemon(
        project, OPENROUTER_BASE_URL=llm.base_url, AOS_MODEL="m", **(settings or {})
    ) as daemon:
        await wait_for_http(base_url)
        async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
            if opened:
                page = await client.get(await ui_address(daemon))
                assert page.status_code == 303, page.text  # to the page, the cookie set
            yield daemon, client


async def sse_events(
    client: httpx.AsyncClient,
    url: str,
    until: str,
    headers: dict[str, str] | None = None,
    seconds: float = 30,
) -> list[tuple[str, Any, str | None]]:
    """(event, data, id) of a Server-Sent Events stream, until a data line holds ``until``."""
    found: list[tuple[str, Any, str | None]] = []
    event, ident = "message", None
    async with asyncio.timeout(seconds), client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("id: "):
                ident = line[4:]
            elif line.startswith("data: "):
                found.append((event, json.loads(line[6:]), ident))
                if until in line:
                    return found
            elif line == "":
                event, ident = "message", None
    return found


async def default_agent(client: httpx.AsyncClient) -> dict[str, Any]:
    agents = (await client.get("/api/agents", params={"status": "active"})).json()
    [found] = [a for a in agents if a["name"] == "default"]
    return found


async def test_chat_round_trip_streams_and_keeps_text_raw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ScriptedLLM(
        Reply.tool_call("printf '<script>alert(1)</script>'"),
        Reply.text("All done: <b>not bold</b>.", chunk=3),
    ) as llm:
        async with frontend(tmp_path, monkeypatch, llm) as (_, client):
            agent = await default_agent(client)  # created by the service at start
            response = await client.post("/api/sessions", json={"agent_id": agent["id"]})
            assert response.status_code == 200
            session = response.json()["id"]
            started = await client.post(f"/api/sessions/{session}/dispatch", json={"message": "hi"})
            assert started.status_code == 200
            assert started.json()["status"] == "running"  # wait=false: it returns at once

            events = await sse_events(
                client, f"/api/sessions/{session}/events", "dispatch.finished"
            )
            facts = [data["fact"] for event, data, _ in events if event == "fact"]
            assert [f["kind"] for f in facts] == [
                "dispatch.started",
                "message.user",
                "message.assistant",
                "tool.call",
                "tool.result",
                "message.assistant",
                "dispatch.finished",
            ]
            [result] = [f for f in facts if f["kind"] == "tool.result"]
            assert result["output"] == "<script>alert(1)</script>"  # raw: the page escapes
            assert result.get("status", "ok") == "ok"
            assert result["exit_code"] == 0
            deltas = [data["text"] for event, data, _ in events if event == "delta"]
            assert len(deltas) > 5  # token by token
            assert "".join(deltas) == "All done: <b>not bold</b>."
            # every fact carries its seq as the event id
            ids = [int(ident) for event, _, ident in events if event == "fact" and ident]
            assert ids == list(range(1, len(facts) + 1))

            history = (await client.get(f"/api/sessions/{session}/history")).json()
            assert [h["fact"] for h in history] == facts
            # a reconnecting browser resumes after the last id it saw: nothing twice
            resumed = await sse_events(
                client,
                f"/api/sessions/{session}/events",
                "dispatch.finished",
                headers={"Last-Event-ID": "5"},
            )
            assert [data["seq"] for event, data, _ in resumed if event == "fact"] == [6, 7]

            scb = (await client.get(f"/api/sessions/{session}")).json()
            assert scb["status"] == "idle"
            sessions = (await client.get("/api/sessions", params={"agent_id": agent["id"]})).json()
            assert [s["id"] for s in sessions] == [session]


async def test_agents_api_maps_onto_syscalls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ScriptedLLM() as llm:
        async with frontend(tmp_path, monkeypatch, llm) as (_, client):
            root = await default_agent(client)
            response = await client.post(
                "/api/agents", json={"name": "helper", "parent": root["id"], "model": "m2"}
            )
            assert response.status_code == 200, response.text
            helper = response.json()["agent"]
            assert (helper["name"], helper["parent"], helper["config"]) == (
                "helper",
                root["id"],
                {"model": "m2"},
            )
            info = (await client.get(f"/api/agents/{helper['id']}")).json()
            assert info["effective"]["model"] == "m2"
            children = (await client.get("/api/agents", params={"parent": root["id"]})).json()
            assert [c["id"] for c in children] == [helper["id"]]
            kept = await client.post(
                f"/api/agents/{helper['id']}", json={"config": {"model": "m3"}, "parent": None}
            )
            assert kept.json()["agent"]["parent"] == root["id"]  # null: not moved
            rooted = await client.post(
                f"/api/agents/{helper['id']}", json={"config": {"model": "m3"}, "parent": ""}
            )
            assert rooted.json()["agent"]["parent"] is None  # "": a root agent now
            moved = await client.post(
                f"/api/agents/{helper['id']}", json={"config": {}, "parent": root["id"]}
            )
            assert moved.json()["agent"]["parent"] == root["id"]

            refused = await client.post(f"/api/agents/{root['id']}/archive", json={})
            assert refused.status_code == 409  # conflict: it has an active child
            assert refused.json()["error"]["code"] == "conflict"
            assert "active children (helper)" in refused.json()["error"]["message"]
            archived = await client.post(f"/api/agents/{helper['id']}/archive", json={})
            assert archived.json()["status"] == "archived"

            missing = await client.get("/api/agents/agt_nope")
            assert missing.status_code == 404
            assert missing.json()["error"]["code"] == "not_found"
            invalid = await client.post("/api/agents", json={"parent": root["id"]})
            assert invalid.status_code == 400  # no name: the syscall's own validation
            assert invalid.json()["error"]["syscall"] == "agent.create"

            # the writes were made as the service's principal (RuntimeLog audit)
            audit = (
                await client.get("/api/log", params={"kind": "syscall", "newest_first": "true"})
            ).json()
            messages = [e["message"] for e in audit]
            assert f"agent.create by service:{SKILL}: ok" in messages
            assert [e["id"] for e in audit] == sorted((e["id"] for e in audit), reverse=True)


async def test_skills_hooks_and_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "skills" / "half-done"
    broken.mkdir(parents=True)
    (broken / "SKILL.md").write_text("---\nname: half-done\n---\nno description\n")
    with ScriptedLLM() as llm:
        async with frontend(tmp_path, monkeypatch, llm) as (_, client):
            skills = {s["name"]: s for s in (await client.get("/api/skills")).json()}
            assert skills[SKILL]["status"] == "active"
            assert (skills[SKILL]["root"], skills[SKILL]["kind"]) == ("standard", "service")
            assert skills["half-done"]["status"] == "broken"
            assert "description" in skills["half-done"]["reason"]
            detail = (await client.get(f"/api/skills/{SKILL}")).json()
            assert detail["scopes"] == SCOPES  # what it needs and nothing more
            assert detail["metadata"] == {"host": "127.0.0.1", "port": "3000"}

            node = (await client.get("/api/node")).json()  # the nodes page's source
            assert node["cluster"]["shared"] is False
            assert [n["id"] for n in node["cluster"]["nodes"]] == [node["node"]]

            hooks = {h["hook"]: h for h in (await client.get("/api/hooks")).json()}
            owners = [i["owner"] for i in hooks["session.assemble"]["implementations"]]
            assert "aos-context" in owners

            since = await client.get("/api/log", params={"newest_first": "true", "limit": 1})
            after = since.json()[0]["id"] if since.json() else 0
            reloaded = await client.post("/api/skills/aos-context/reload", json={})
            assert reloaded.status_code == 200, reloaded.text
            assert reloaded.json()["name"] == "aos-context"
            # the live tail: log entries after a given id, as they are written
            await client.post("/api/agents", json={"name": "tail-me"})
            tail = await sse_events(
                client,
                f"/api/log/stream?after_id={after}&kind=syscall",
                "agent.create by",
            )
            assert all(data["kind"] == "syscall" for _, data, _ in tail)
            assert tail[-1][1]["message"] == f"agent.create by service:{SKILL}: ok"
            assert all(int(ident or 0) > after for _, _, ident in tail)

            assert (await client.get("/api/kernel/status")).status_code == 404  # no route
            assert (await client.get("/api/skills/no-such-skill")).status_code == 404

            # the filters' bad values are 400s that say what is wrong
            bad = {
                "/api/log?level=loud": "level",
                "/api/log?before_id=soon": "before_id must be an integer",
                "/api/sessions?limit=many": "limit must be an integer",
                "/api/sessions?outcome=so-so": "outcome",
            }
            for url, said in bad.items():
                answer = await client.get(url)
                assert answer.status_code == 400, url
                assert said in answer.json()["error"]["message"], answer.text
            agent = (await client.post("/api/agents", json={"name": "filtered"})).json()
            session = (
                await client.post("/api/sessions", json={"agent_id": agent["agent"]["id"]})
            ).json()
            kinds = await client.get(f"/api/sessions/{session['id']}/history?kinds=message.nope")
            assert kinds.status_code == 400 and "message.nope" in kinds.text
            long = await client.post(f"/api/sessions/{session['id']}", json={"title": "x" * 201})
            assert long.status_code == 400
            renamed = await client.post(f"/api/sessions/{session['id']}", json={"title": "kept"})
            assert renamed.json()["title"] == "kept"


async def test_requests_from_other_sites_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ScriptedLLM() as llm:
        async with frontend(tmp_path, monkeypatch, llm) as (_, client):
            page = await client.get("/")
            assert page.status_code == 200
            policy = page.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "default-src 'none'" in policy
            assert page.headers["x-content-type-options"] == "nosniff"
            # a cross-site form post (no JSON, foreign origin) never reaches a syscall
            form = await client.post("/api/agents", data={"name": "evil"})
            assert form.status_code == 415
            foreign = await client.post(
                "/api/agents", json={"name": "evil"}, headers={"Origin": "http://evil.example"}
            )
            assert foreign.status_code == 403
            # DNS rebinding: a loopback UI answers to loopback host names only
            rebound = await client.get("/api/agents", headers={"Host": "evil.example:3000"})
            assert rebound.status_code == 421
            names = [a["name"] for a in (await client.get("/api/agents")).json()]
            assert "evil" not in names


async def test_a_configured_token_is_required_on_every_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "s3cret-token"
    with ScriptedLLM() as llm:
        async with frontend(
            tmp_path,
            monkeypatch,
            llm,
            opened=False,
            AOS_FRONTEND_HOST="127.0.0.1",
            AOS_FRONTEND_TOKEN=token,
        ) as (daemon, client):
            assert await ui_address(daemon) == f"{str(client.base_url).rstrip('/')}/?token={token}"
            for path in ("/", "/static/app.js", "/api/agents", "/api/log/stream", "/api/events"):
                refused = await client.get(path)
                assert refused.status_code == 401, path
            assert (await client.post("/api/agents", json={"name": "x"})).status_code == 401
            wrong = await client.get("/api/agents", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            assert "access token" in wrong.json()["error"]["message"]

            bearer = await client.get("/api/agents", headers={"Authorization": f"Bearer {token}"})
            assert bearer.status_code == 200
            assert "default" in [a["name"] for a in bearer.json()]

            # ?token= on the page sets an HttpOnly cookie and leaves the address clean
            opened = await client.get("/", params={"token": token})
            assert opened.status_code == 303
            assert opened.headers["location"] == "/"
            cookie = opened.headers["set-cookie"]
            assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
            port = client.base_url.port
            assert client.cookies.get(f"aos_frontend_token_{port}") == token  # one per port
            assert (await client.get("/")).status_code == 200
            assert (await client.get("/api/agents")).status_code == 200
            client.cookies.clear()
            assert (await client.get("/api/agents")).status_code == 401


def token_file(daemon: Daemon) -> Path:
    assert daemon.kernel is not None
    return daemon.kernel.config.paths.state_dir / "frontend.token"


async def test_loopback_needs_the_token_too_and_it_survives_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AOS_FRONTEND_TOKEN", raising=False)
    with ScriptedLLM() as llm:
        async with frontend(tmp_path, monkeypatch, llm, opened=False) as (daemon, client):
            for path in ("/", "/static/app.js", "/api/agents", "/api/sessions", "/api/events"):
                assert (await client.get(path)).status_code == 401, path
            posted = await client.post("/api/agents", json={"name": "x"})
            assert posted.status_code == 401
            assert posted.json()["error"]["message"] == (
                "aos-frontend needs its access token: run `aos status` for the UI's address "
                "with its token (or send Authorization: Bearer TOKEN)"
            )
            assert "run `aos status`" in (await client.get("/")).text

            # the node's own token: generated at start, private, the one in the address
            stored = token_file(daemon)
            assert stat.S_IMODE(stored.stat().st_mode) == 0o600
            token = stored.read_text().strip()
            assert len(token) >= 40  # 32 random bytes
            url = await ui_address(daemon)
            assert url == f"{str(client.base_url).rstrip('/')}/?token={token}"
            assert (await client.get(url)).status_code == 303  # opened once: the cookie
            assert (await client.get("/api/agents")).status_code == 200

            # the service dies and comes back: the same token, so the cookie still works
            killed = (frontend_status(daemon) or {})["pid"]
            os.kill(killed, signal.SIGKILL)

            def restarted() -> bool:
                status = frontend_status(daemon) or {}
                return status.get("state") == "running" and status.get("pid") != killed

            await poll_until(restarted, 30)
            await wait_for_http(str(client.base_url))
            assert (await client.get("/api/agents")).status_code == 200
            assert stored.read_text().strip() == token
            assert await ui_address(daemon) == url


def test_the_token_file_stays_private_and_whole(tmp_path: Path) -> None:
    stored = access.token_file(tmp_path / "state")
    token = access.load_or_create_token(stored)  # the directory is made too
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert access.load_or_create_token(stored) == token  # reused
    stored.chmod(0o644)  # loosened by another hand: tightened on the next read
    assert access.read_token(stored) == token
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    stored.write_text("short\n")  # truncated: not trusted, replaced by a new one
    fresh = access.load_or_create_token(stored)
    assert fresh != token and len(fresh) >= 40
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert [f.name for f in stored.parent.iterdir()] == [access.TOKEN_FILE]  # no leftovers
    assert access.token_for({"AOS_FRONTEND_TOKEN": "set-by-hand"}, stored.parent) == "set-by-hand"


def test_the_cli_shows_the_address_with_its_token(tmp_path: Path) -> None:
    """`aos start` and `aos status` print the address to open, with the node's
    token; `aos doctor` too; a daemon restart keeps it (a bookmark works)."""
    home = Path(tempfile.mkdtemp(prefix="aos-", dir="/tmp"))
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AOS_", "OPENROUTER_"))}
    env = {**clean, "AOS_HOME": str(home), "AOS_FRONTEND_PORT": str(port)}

    def aos(*args: str) -> str:
        done = subprocess.run(
            [AOS, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def ui_line(output: str, label: str) -> str:
        [line] = [line for line in output.splitlines() if line.startswith(label)]
        return line.removeprefix(label).strip()

    def open_page(url: str) -> httpx.Response:
        """Open the address as a browser would (once it listens), then use the API."""
        with httpx.Client(timeout=5) as browser:
            for _ in range(600):
                try:
                    page = browser.get(url, follow_redirects=True)
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            else:
                raise AssertionError(f"nothing listens at {url}")
            assert page.status_code == 200
            return browser.get(f"http://127.0.0.1:{port}/api/agents")

    try:
        url = ui_line(aos("start"), "ui:")
        token = (home / "state" / "frontend.token").read_text().strip()
        assert url == f"http://127.0.0.1:{port}/?token={token}"
        assert open_page(url).status_code == 200
        assert ui_line(aos("status"), "ui:") == url  # from the running service
        assert json.loads(aos("status", "--json"))["ui"] == url
        assert ui_line(aos("doctor"), "web UI:") == url
        aos("stop")
        assert ui_line(aos("start"), "ui:") == url  # the same after a restart: bookmarks work
        assert open_page(url).status_code == 200
    finally:
        subprocess.run([AOS, "stop"], cwd=tmp_path, env=env, capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


async def test_another_interface_needs_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("AOS_FRONTEND_PORT", str(port))
    monkeypatch.setenv("AOS_FRONTEND_HOST", "0.0.0.0")
    monkeypatch.delenv("AOS_FRONTEND_TOKEN", raising=False)
    async with running_daemon(tmp_path) as daemon:
        await poll_until(lambda: bool((frontend_status(daemon) or {}).get("last_error")), 30)
        error = (frontend_status(daemon) or {})["last_error"]
        assert "exited with code 2" in error
        assert "AOS_FRONTEND_HOST=0.0.0.0 is not a loopback address" in error
        assert "set AOS_FRONTEND_TOKEN" in error
        with socket.socket() as probe:  # nothing listens
            assert probe.connect_ex(("127.0.0.1", port)) != 0


async def test_a_taken_port_names_its_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        monkeypatch.setenv("AOS_FRONTEND_PORT", str(port))
        async with running_daemon(tmp_path) as daemon:
            await poll_until(lambda: bool((frontend_status(daemon) or {}).get("last_error")), 30)
            error = (frontend_status(daemon) or {})["last_error"]
        me = command_line(os.getpid())
        assert f"aos-frontend: port {port} on 127.0.0.1 is taken by {os.getpid()} {me}" in error
        assert "exited with code 2" in error


def test_the_page_never_turns_data_into_markup() -> None:
    """User content is escaped because the page builds its DOM with textContent:
    no HTML parsing sink appears in its code at all."""
    sinks = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
        r"createContextualFragment|DOMParser|srcdoc"
    )
    for name in ("index.html", "app.js"):
        text = (FRONTEND / "static" / name).read_text()
        assert not sinks.findall(text), f"{name} uses {sinks.findall(text)}"
    index = (FRONTEND / "static" / "index.html").read_text()
    assert "<script>" not in index and "onclick" not in index  # no inline script (CSP)


async def test_without_aos_frontend_in_the_defaults_nothing_listens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aos.testing import free_port, temporary_daemon

    port = free_port()
    monkeypatch.setenv("AOS_FRONTEND_PORT", str(port))
    async with temporary_daemon(
        tmp_path, AOS_DEFAULT_SKILLS="aos-context,aos-skill,aos-a2a"
    ) as daemon:
        assert daemon.kernel is not None
        assert daemon.kernel.services is not None
        await asyncio.sleep(1.0)  # time enough for a service to have started
        assert "aos-frontend" not in [s["skill"] for s in daemon.kernel.services.status()]
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", port), 1),
        ):
            pass


async def test_a_body_over_the_limit_is_a_413_and_the_ui_stays_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 20 MB JSON POST was an HTTP 500 and crashed aos-frontend (a frame over
    16 MiB), again on every repeat."""
    with ScriptedLLM() as llm:
        async with frontend(tmp_path, monkeypatch, llm) as (daemon, client):
            before = frontend_status(daemon)
            assert before is not None
            huge = {"name": "big", "config": {"model": "x" * 20_000_000}}
            for _ in range(2):
                response = await client.post("/api/agents", json=huge)
                assert response.status_code == 413, response.text
                assert response.json()["error"] == {
                    "code": "too_large",
                    "message": "the request body is over 1 MiB: send less (a long text "
                    "belongs in a file in the agent's workspace)",
                }

            async def pieces() -> AsyncIterator[bytes]:
                for _ in range(20):
                    yield b"x" * 65536

            chunked = await client.post(  # no Content-Length: counted as it arrives
                "/api/agents", content=pieces(), headers={"content-type": "application/json"}
            )
            assert chunked.status_code == 413, chunked.text
            assert (await client.get("/api/agents")).status_code == 200
            after = frontend_status(daemon)
            assert after is not None
            assert after["pid"] == before["pid"]  # never restarted
