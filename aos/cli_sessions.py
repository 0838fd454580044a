"""``aos run``, ``aos chat`` and ``aos session ...``: the main job from the terminal.

They talk to the running daemon. With none running, ``run`` and ``chat`` start
an embedded daemon for their duration (services included, so guards apply),
and the ``session`` read commands open the kernel in process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import click
from aos_sdk import Client, NotConnected, SyscallFailed

from aos.daemon import Daemon, DaemonPaths, setup_logging
from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.syscalls import SyscallError

DEFAULT_AGENT = "default"
SHOWN_OUTPUT_LINES = 40


@contextlib.asynccontextmanager
async def daemon_socket(config: Any, *, embed: bool) -> AsyncIterator[Path | None]:
    """The running daemon's control socket; else an embedded daemon's (``embed``),
    else None (the caller opens the kernel in process)."""
    paths = DaemonPaths.of(config)
    try:
        async with Client(paths.control_socket, token="", connect_timeout=0):
            pass
    except NotConnected:
        if not embed:
            yield None
            return
        setup_logging(paths.log_file, foreground=False)
        daemon = Daemon(config)
        ready = asyncio.Event()
        task = asyncio.get_running_loop().create_task(daemon.run(ready=ready))
        waiting = asyncio.ensure_future(ready.wait())
        done, _ = await asyncio.wait([task, waiting], return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            waiting.cancel()
            task.result()
        try:
            yield paths.control_socket
        finally:
            assert daemon.kernel is not None
            daemon.kernel.shutdown_reason = "the embedded daemon's command finished"
            daemon.kernel.shutdown_requested.set()
            await task
        return
    yield paths.control_socket


async def call(config: Any, name: str, params: dict[str, Any] | None = None) -> Any:
    """A syscall as admin: on the running daemon, else on a kernel opened in process."""
    async with daemon_socket(config, embed=False) as socket_path:
        try:
            if socket_path is not None:
                async with Client(socket_path, token="", connect_timeout=0) as client:
                    return await client.call(name, params)
            kernel = await Kernel.open(config)
            try:
                return await kernel.syscall(ADMIN, name, params)
            finally:
                await kernel.close()
        except (SyscallFailed, SyscallError) as exc:
            raise click.ClickException(f"{name} failed: {exc.code}: {exc.message}") from None


async def resolve_agent(client: Client, agent: str | None) -> str:
    """An agent id from an id or a name; the default agent is created on first use."""
    wanted = agent or DEFAULT_AGENT
    try:
        return (await client.call("agent.get", {"id": wanted}))["agent"]["id"]
    except SyscallFailed as exc:
        if exc.code != "not_found":
            raise
    for found in await client.call("agent.list", {"status": "active"}):
        if found["name"] == wanted:
            return found["id"]
    if agent is not None:  # only the default agent is created on first use
        raise click.ClickException(
            f"no active agent named or numbered {agent!r}: `aos agent list` shows them, "
            f"`aos agent create {agent}` makes one"
        )
    return (await client.call("agent.create", {"name": wanted}))["agent"]["id"]


class Printer:
    """Prints a dispatch as it happens: the model's text token by token, each
    tool call and its result."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.mid_line = False
        self.finished = asyncio.Event()
        self.pending: list[str] = []
        """Ids of tool calls whose result has not been printed yet (ids may repeat)."""
        self.held: list[tuple[str, dict[str, Any]]] = []
        """The next step's streamed text, which can arrive before the last result
        (a result is announced once committed, while the next step already runs)."""

    def write(self, text: str, **style: Any) -> None:
        if self.quiet:
            return
        click.echo(click.style(text, **style) if style else text, nl=False)  # no colour in pipes
        sys.stdout.flush()
        self.mid_line = not text.endswith("\n")

    def newline(self) -> None:
        if self.mid_line:
            self.write("\n")

    def event(self, topic: str, data: dict[str, Any]) -> None:
        if topic == "stream":
            if self.pending:
                self.held.append((topic, data))
            else:
                self.write(data["text"], **({} if data["kind"] == "content" else {"dim": True}))
            return
        fact = data["fact"]
        kind = fact["kind"]
        if kind == "message.assistant":
            self.newline()
            for call in fact.get("tool_calls") or ():
                self.pending.append(call["id"])
                self.write(f"$ {call['command'] or call.get('error', '')}\n", fg="cyan")
        elif kind == "tool.result":
            if fact["call_id"] in self.pending:
                self.pending.remove(fact["call_id"])
            lines = fact["output"].rstrip("\n").splitlines()
            shown = lines[:SHOWN_OUTPUT_LINES]
            for line in shown:
                self.write(f"  {line}\n", dim=True)
            if len(lines) > len(shown):
                self.write(f"  ... {len(lines) - len(shown)} more lines\n", dim=True)
            status = fact.get("status", "ok")
            if status == "rejected":
                self.write(f"  [rejected by {fact.get('rejected_by')}]\n", fg="red")
            elif status != "ok" or fact.get("exit_code") not in (0, None):
                self.write(f"  [{status}, exit {fact.get('exit_code')}]\n", fg="yellow")
            if not self.pending:
                self._release()
        elif kind == "dispatch.finished":
            self.pending.clear()
            self._release()
            self.newline()
            if fact["status"] != "completed":
                self.write(f"[{fact['status']}] {fact.get('error') or ''}\n", fg="red")
            self.finished.set()

    def _release(self) -> None:
        """Print the streamed text held while results were awaited."""
        held, self.held = self.held, []
        for topic, data in held:
            self.event(topic, data)


async def dispatch(
    client: Client, session_id: str, message: str, *, printer: Printer
) -> dict[str, Any]:
    """Dispatch ``message`` on a session, printing as it streams. Bash runs in the
    current directory unless the agent has a workspace of its own."""
    agent_id = (await client.call("session.get", {"id": session_id}))["agent_id"]
    effective = (await client.call("agent.get", {"id": agent_id}))["effective"]
    params: dict[str, Any] = {"id": session_id, "message": message}
    if effective["workspace"] is None:
        params["cwd"] = os.getcwd()
    events = client.subscribe(topics=["stream", "history.append"], session_id=session_id)
    first = asyncio.ensure_future(anext(events))

    async def pump() -> None:
        event = await first
        while True:
            printer.event(event.topic, event.data)
            if printer.finished.is_set():
                return
            event = await anext(events)

    printing = asyncio.ensure_future(pump())
    await asyncio.sleep(0.05)  # the subscription is in place before the dispatch starts
    try:
        result = await client.call("session.dispatch", params)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await printing
    finally:
        printing.cancel()
        await asyncio.gather(printing, return_exceptions=True)
        await events.aclose()
    return result


async def run_once(
    config: Any, agent: str | None, session: str | None, message: str, *, as_json: bool
) -> int:
    async with daemon_socket(config, embed=True) as socket_path:
        assert socket_path is not None
        async with Client(socket_path, token="") as client:
            try:
                warn_isolation((await client.call("kernel.status"))["isolation"])
                session_id, agent_id = await open_session(client, agent, session)
                before = len(await client.call("session.history", {"id": session_id}))
                result = await dispatch(client, session_id, message, printer=Printer(quiet=as_json))
                facts = await client.call("session.history", {"id": session_id, "after": before})
            except SyscallFailed as exc:
                raise click.ClickException(f"{exc.code}: {exc.message}") from None
    if as_json:
        click.echo(
            json.dumps(
                {
                    "session_id": session_id,
                    "agent_id": agent_id,
                    "status": result["status"],
                    "answer": result["answer"],
                    "error": result["error"],
                    "facts": [flat_fact(f) for f in facts],
                },
                indent=2,
            )
        )
    else:
        click.echo(click.style(f"session {session_id}", dim=True), err=True)
    return 0 if result["status"] == "completed" else 1


def warn_isolation(isolation: Mapping[str, Any]) -> None:
    """Say on stderr when agent commands are not sandboxed though they could be
    asked to be (``sandbox: auto`` on a host without bubblewrap)."""
    if isolation.get("warning"):
        click.echo(click.style(f"aos: warning: {isolation['warning']}", fg="yellow"), err=True)


async def open_session(client: Client, agent: str | None, session: str | None) -> tuple[str, str]:
    """``(session id, agent id)``: the named session, or a new one of the agent."""
    if session is not None:
        return session, (await client.call("session.get", {"id": session}))["agent_id"]
    agent_id = await resolve_agent(client, agent)
    return (await client.call("session.create", {"agent_id": agent_id}))["id"], agent_id


def flat_fact(entry: dict[str, Any]) -> dict[str, Any]:
    """A stored fact as one flat object: ``{seq, ts, kind, ...its fields}``."""
    return {"seq": entry["seq"], "ts": entry["ts"], **entry["fact"]}


def register(cli: click.Group, pass_context: Any) -> None:
    """Add run, chat and session to the root group."""

    @cli.command()
    @click.option("-a", "--agent", help="Agent id or name (default: the 'default' agent).")
    @click.option("-s", "--session", help="Continue this session (default: a new one).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end.")
    @click.argument("message")
    @pass_context
    def run(ctx: Any, agent: str | None, session: str | None, as_json: bool, message: str) -> None:
        """Dispatch MESSAGE and stream the agent's work; prints the session id."""
        sys.exit(asyncio.run(run_once(ctx.config, agent, session, message, as_json=as_json)))

    @cli.command()
    @click.option("-a", "--agent", help="Agent id or name (default: the 'default' agent).")
    @click.option("-s", "--session", help="Continue this session (default: a new one).")
    @pass_context
    def chat(ctx: Any, agent: str | None, session: str | None) -> None:
        """An interactive loop on one session (Ctrl-D to leave)."""
        asyncio.run(chat_loop(ctx.config, agent, session))

    @cli.group(name="agent")
    def agent_group() -> None:
        """List, show, create and archive agents."""

    @agent_group.command(name="list")
    @click.option("--json", "as_json", is_flag=True)
    @pass_context
    def agent_list(ctx: Any, as_json: bool) -> None:
        """Agents as a tree (children under their parent)."""
        agents = asyncio.run(call(ctx.config, "agent.list", {}))
        if as_json:
            click.echo(json.dumps(agents, indent=2))
            return
        children: dict[str | None, list[dict[str, Any]]] = {}
        for a in agents:
            children.setdefault(a["parent"], []).append(a)

        def show(parent: str | None, depth: int) -> None:
            for a in children.get(parent, []):
                click.echo(f"{'  ' * depth}{a['name']}  {a['id']}  [{a['status']}]")
                show(a["id"], depth + 1)

        show(None, 0)

    @agent_group.command(name="show")
    @click.argument("agent_id")
    @click.option("--json", "as_json", is_flag=True)
    @pass_context
    def agent_show(ctx: Any, agent_id: str, as_json: bool) -> None:
        """One agent with its effective (inherited) configuration."""
        info = asyncio.run(call(ctx.config, "agent.get", {"id": agent_id}))
        if as_json:
            click.echo(json.dumps(info, indent=2))
            return
        for key, value in {**info["agent"], "effective": info["effective"]}.items():
            click.echo(f"{key}: {json.dumps(value)}")

    @agent_group.command(name="create")
    @click.argument("name")
    @click.option("--parent", help="Parent agent id (the child inherits its configuration).")
    @click.option("--model", help="Model id for this agent.")
    @click.option(
        "--skill", "skills", multiple=True, help="A skill active for this agent (repeat)."
    )
    @click.option("--workspace", help="Directory its bash runs in.")
    @click.option(
        "--scope",
        "scopes",
        multiple=True,
        help="A syscall scope its tokens hold (repeat; default: the default agent scopes).",
    )
    @click.option("--json", "as_json", is_flag=True)
    @pass_context
    def agent_create(
        ctx: Any, name: str, parent: str | None, model: str | None, skills: tuple[str, ...],
        workspace: str | None, scopes: tuple[str, ...], as_json: bool,
    ) -> None:  # fmt: skip
        """Create an agent."""
        config: dict[str, Any] = {
            "model": model,
            "workspace": workspace,
            "skills": list(skills) or None,
        }
        params = {
            "name": name,
            "parent": parent,
            "config": {k: v for k, v in config.items() if v is not None},
            "scopes": list(scopes) or None,
        }
        info = asyncio.run(call(ctx.config, "agent.create", params))
        if as_json:
            click.echo(json.dumps(info, indent=2))
            return
        click.echo(f"created agent {info['agent']['name']} {info['agent']['id']}")

    @agent_group.command(name="archive")
    @click.argument("agent_id")
    @pass_context
    def agent_archive(ctx: Any, agent_id: str) -> None:
        """Archive an agent (refused while it has active children)."""
        acb = asyncio.run(call(ctx.config, "agent.archive", {"id": agent_id}))
        click.echo(f"archived agent {acb['name']} {acb['id']}")

    @cli.group(name="session")
    def session_group() -> None:
        """List and inspect sessions; interrupt a running dispatch."""

    @session_group.command(name="list")
    @click.option("-a", "--agent", help="Only this agent's sessions (id).")
    @click.option("--json", "as_json", is_flag=True)
    @pass_context
    def session_list(ctx: Any, agent: str | None, as_json: bool) -> None:
        """Sessions with their status."""
        params = {"agent_id": agent} if agent else {}
        sessions = asyncio.run(call(ctx.config, "session.list", params))
        if as_json:
            click.echo(json.dumps(sessions, indent=2))
            return
        for s in sessions:
            click.echo(f"{s['id']}  {s['status']:<8} agent {s['agent_id']}  {s['title']}")

    @session_group.command(name="show")
    @click.argument("session_id")
    @click.option("--json", "as_json", is_flag=True)
    @pass_context
    def session_show(ctx: Any, session_id: str, as_json: bool) -> None:
        """One session's control block."""
        scb = asyncio.run(call(ctx.config, "session.get", {"id": session_id}))
        if as_json:
            click.echo(json.dumps(scb, indent=2))
            return
        for key, value in scb.items():
            click.echo(f"{key}: {value}")

    @session_group.command(name="history")
    @click.argument("session_id")
    @click.option("--json", "as_json", is_flag=True)
    @pass_context
    def session_history(ctx: Any, session_id: str, as_json: bool) -> None:
        """A session's facts, oldest first."""
        entries = asyncio.run(call(ctx.config, "session.history", {"id": session_id}))
        facts = [flat_fact(e) for e in entries]
        if as_json:
            click.echo(json.dumps(facts, indent=2))
            return
        for fact in facts:
            click.echo(describe_fact(fact))

    @session_group.command(name="context")
    @click.argument("session_id")
    @click.option("--rebuild", is_flag=True, help="Assemble from the whole history.")
    @click.option("--json", "as_json", is_flag=True)
    @pass_context
    def session_context(ctx: Any, session_id: str, rebuild: bool, as_json: bool) -> None:
        """The messages the next step would send to the model."""
        messages = asyncio.run(
            call(ctx.config, "session.context", {"id": session_id, "rebuild": rebuild})
        )
        if as_json:
            click.echo(json.dumps(messages, indent=2))
            return
        for m in messages:
            click.echo(click.style(f"[{m['role']}]", bold=True) + f" {m.get('content') or ''}")
            for call_ in m.get("tool_calls") or ():
                click.echo(f"  tool call {call_['id']}: {call_['function']['arguments']}")

    @session_group.command(name="interrupt")
    @click.argument("session_id")
    @pass_context
    def session_interrupt(ctx: Any, session_id: str) -> None:
        """Stop the session's running dispatch (its running command is killed)."""
        outcome = asyncio.run(call(ctx.config, "session.interrupt", {"id": session_id}))
        click.echo(f"interrupted dispatch {outcome['dispatch_id']} of session {session_id}")


def describe_fact(fact: dict[str, Any]) -> str:
    kind = fact["kind"]
    head = f"{fact['seq']:>5} {kind:<18}"
    if kind in ("message.user", "message.assistant"):
        calls = "".join(f"\n{'':24}$ {c['command']}" for c in fact.get("tool_calls") or ())
        return f"{head} {fact.get('text', '')}{calls}"
    if kind == "tool.result":
        extra = f" by {fact['rejected_by']}" if fact.get("rejected_by") else ""
        first = fact["output"].splitlines()[0] if fact["output"] else ""
        return f"{head} [{fact.get('status', 'ok')}{extra}, exit {fact.get('exit_code')}] {first}"
    if kind == "tool.call":
        return f"{head} $ {fact['command']}"
    if kind == "a2a.message":
        reply = f" reply to {fact['reply_to']}" if fact.get("reply_to") else ""
        return f"{head} {fact['from_agent']} -> {fact['to_agent']} ({fact['mode']}{reply}): {fact['text']}"
    if kind == "dispatch.finished":
        return f"{head} {fact['status']} {fact.get('error') or ''}"
    rest = {k: v for k, v in fact.items() if k not in ("seq", "ts", "kind")}
    return f"{head} {json.dumps(rest)[:200]}"


async def chat_loop(config: Any, agent: str | None, session: str | None) -> None:
    async with daemon_socket(config, embed=True) as socket_path:
        assert socket_path is not None
        async with Client(socket_path, token="") as client:
            session_id, _ = await open_session(client, agent, session)
            click.echo(click.style(f"session {session_id} — Ctrl-D to leave", dim=True))
            loop = asyncio.get_running_loop()
            while True:
                line = await loop.run_in_executor(None, _prompt)
                if line is None:
                    break
                if not line.strip():
                    continue
                try:
                    await dispatch(client, session_id, line, printer=Printer(quiet=False))
                except SyscallFailed as exc:
                    click.echo(f"{exc.code}: {exc.message}", err=True)
            click.echo(f"session {session_id}")


def _prompt() -> str | None:
    try:
        return input("> ")
    except EOFError:
        return None
