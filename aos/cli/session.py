"""``aos run``, ``aos chat`` and ``aos session ...``: the main job from the terminal.

They talk to the running daemon. With none running, ``run`` and ``chat`` start
an embedded daemon for their duration (services included, so guards apply),
and the ``session`` read commands open the kernel in process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import (
    Iterable,
    Iterator,
    Mapping,
)
from pathlib import Path
from typing import Any, TypeVar

import click
from aos_sdk import Client, SyscallFailed

from aos.cli._app import cli, pass_context
from aos.cli.agent import print_record, print_table, resolve_agent
from aos.cli.output import (
    CLIError,
    ago,
    cost,
    emit_json,
    json_option,
    syscall_error,
    tokens,
    usage_line,
    warn_isolation,
)
from aos.cli.syscall import admin, call, cli_errors, daemon_socket

SHOWN_OUTPUT_LINES = 40

T = TypeVar("T")

LEAVING_SIGNALS = (signal.SIGINT, signal.SIGHUP)
"""Ctrl-C and a closed terminal: they interrupt the dispatch the CLI started."""


class Printer:
    """Prints a dispatch as it happens: the model's text token by token, each
    tool call and its result. The model's reasoning, when ``reasoning``, comes as a
    dim block labelled ``thinking:``, apart from the answer; else it is left out."""

    def __init__(self, *, quiet: bool, reasoning: bool = False) -> None:
        self.quiet = quiet
        self.reasoning = reasoning
        self.thinking = False
        """Whether the reasoning block is open (the answer's first text closes it)."""
        self.mid_line = False
        self.finished = asyncio.Event()

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
        if topic == "stream" and data["kind"] == "notice":  # e.g. a rate-limit wait
            with contextlib.suppress(OSError):
                click.echo(click.style(f"aos: {data['text']}", fg="yellow"), err=True)
            return
        if topic == "stream":  # events come in history order (see ReActUnit)
            self.stream(data["kind"], data["text"])
            return
        fact = data["fact"]
        kind = fact["kind"]
        if kind == "message.assistant":
            self.thinking = False
            self.newline()
            if fact.get("incomplete"):
                self.write("[the reply broke off here]\n", fg="yellow")
            for call in fact.get("tool_calls") or ():
                self.write(f"$ {call['command'] or call.get('error', '')}\n", fg="cyan")
        elif kind == "tool.result":
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
        elif kind == "dispatch.finished":
            self.newline()
            if fact["status"] != "completed":
                self.write(f"[{fact['status']}] {fact.get('error') or ''}\n", fg="red")
            self.finished.set()

    def stream(self, kind: str, text: str) -> None:
        """A piece of the model's reply: ``content`` or ``reasoning``."""
        if kind != "content":
            if self.reasoning:
                if not self.thinking:
                    self.newline()
                    self.write("thinking: ", dim=True, italic=True)
                    self.thinking = True
                self.write(text, dim=True)
            return
        if self.thinking:
            self.write("\n\n" if self.mid_line else "\n")
            self.thinking = False
        self.write(text)


class Left(Exception):
    """The user left the CLI (a second Ctrl-C during a dispatch, or one outside it)."""


def say(text: str) -> None:
    """A line on stderr, if the terminal is still there (SIGHUP closes it)."""
    with contextlib.suppress(OSError):
        click.echo(click.style(text, fg="yellow"), err=True)


class Interrupts:
    """Ctrl-C (SIGINT) and a closed terminal (SIGHUP) while ``aos run`` or ``aos chat``
    runs. During a dispatch the first one interrupts it (``session.interrupt``) and
    lets it settle; a second one leaves at once, without waiting for it (it goes on
    in a daemon of its own, saying how to stop it). Outside a dispatch one leaves."""

    def __init__(self, client: Client, status: Mapping[str, Any]) -> None:
        self.client = client
        self.embedded = status["pid"] == os.getpid()
        """Whether the daemon lives in this process (it stops when the CLI leaves)."""
        self.signum: int | None = None
        """The first signal received: the CLI exits with 128 + it."""
        self.left = asyncio.Event()
        self._session_id: str | None = None
        self._call: asyncio.Future[Any] | None = None
        self._printer: Printer | None = None
        self._stopping: asyncio.Task[None] | None = None

    def carry_on(self) -> bool:
        """After a dispatch of ``aos chat``: back to the prompt after Ctrl-C (forgotten),
        not after a closed terminal."""
        if self.signum == signal.SIGHUP:
            return False
        self.signum = None
        return True

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    def __enter__(self) -> Interrupts:
        loop = asyncio.get_running_loop()
        for signum in LEAVING_SIGNALS:
            loop.add_signal_handler(signum, self._on_signal, signum)
        return self

    def __exit__(self, *_: object) -> None:
        loop = asyncio.get_running_loop()
        for signum in LEAVING_SIGNALS:
            loop.remove_signal_handler(signum)

    @contextlib.contextmanager
    def during(
        self, session_id: str, call: asyncio.Future[Any], printer: Printer
    ) -> Iterator[None]:
        """Signals now concern this dispatch (``call``, the ``session.dispatch`` syscall)."""
        self._session_id, self._call, self._printer = session_id, call, printer
        try:
            yield
        finally:
            self._call = self._printer = None
            if self._stopping is not None:
                self._stopping.cancel()
                self._stopping = None

    async def settled(self, waited: asyncio.Future[T]) -> T:
        """``waited``'s result, or :class:`Left` when the user leaves first."""
        leaving = asyncio.ensure_future(self.left.wait())
        try:
            await asyncio.wait([waited, leaving], return_when=asyncio.FIRST_COMPLETED)
        finally:
            leaving.cancel()
        if not waited.done():
            waited.cancel()
            raise Left
        return waited.result()

    def _on_signal(self, signum: int) -> None:
        self.signum = self.signum or signum
        if signum == signal.SIGHUP and self._printer is not None:
            self._printer.quiet = True  # the terminal is gone
        call = self._call
        if call is None or call.done():
            self.left.set()
        elif self._stopping is None:
            say("aos: interrupting the dispatch (Ctrl-C again to leave it running)")
            self._stopping = asyncio.ensure_future(self._interrupt(call))
        else:
            sid = self._session_id
            say(
                "aos: left; the embedded daemon stops, and the dispatch with it"
                if self.embedded
                else f"aos: left without waiting for the dispatch to settle: "
                f"`aos session show {sid}` shows it, `aos session interrupt {sid}` stops it"
            )
            self.left.set()

    async def _interrupt(self, call: asyncio.Future[Any]) -> None:
        """``session.interrupt``, again while the dispatch is still starting."""
        while not call.done():
            try:
                await self.client.call("session.interrupt", {"id": self._session_id})
                return
            except SyscallFailed as exc:
                if exc.code != "conflict":
                    say(f"aos: the interrupt failed: {exc.code}: {exc.message}")
                    return
            await asyncio.sleep(0.05)  # not running yet: it is being prepared


async def dispatch(
    client: Client,
    session_id: str,
    message: str,
    *,
    printer: Printer,
    interrupts: Interrupts,
    model: str | None = None,
) -> dict[str, Any]:
    """Dispatch ``message`` on a session, printing as it streams. Bash runs in the
    current directory unless the agent has a workspace of its own; ``model``
    overrides the agent's for this dispatch. Raises :class:`Left` if the user leaves."""
    agent_id = (await client.call("session.get", {"id": session_id}))["agent_id"]
    effective = (await client.call("agent.get", {"id": agent_id}))["effective"]
    params: dict[str, Any] = {"id": session_id, "message": message}
    if effective["workspace"] is None:
        params["cwd"] = os.getcwd()
    if model is not None:
        params["model"] = model
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
        if interrupts.left.is_set():  # a signal before anything was sent: nothing to stop
            raise Left
        call = asyncio.ensure_future(client.call("session.dispatch", params))
        with interrupts.during(session_id, call, printer):
            result = await interrupts.settled(call)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await printing
    finally:
        printing.cancel()
        await asyncio.gather(printing, return_exceptions=True)
        await events.aclose()
    return result


async def run_once(
    config: Any,
    agent: str | None,
    session: str | None,
    message: str,
    *,
    as_json: bool,
    reasoning: bool = False,
    model: str | None = None,
) -> int:
    async with daemon_socket(config, embed=True) as socket_path:
        assert socket_path is not None
        async with Client(socket_path, token="") as client:
            status = await client.call("kernel.status")
            check_project(config, status, socket_path)
            warn_isolation(status["isolation"])
            interrupts = Interrupts(client, status)
            try:
                session_id, agent_id = await open_session(client, agent, session)
                before = len(await client.call("session.history", {"id": session_id}))
                with interrupts:
                    result = await dispatch(
                        client,
                        session_id,
                        message,
                        printer=Printer(quiet=as_json, reasoning=reasoning),
                        interrupts=interrupts,
                        model=model,
                    )
                facts = await client.call("session.history", {"id": session_id, "after": before})
            except SyscallFailed as exc:
                raise syscall_error(exc.code, exc.message) from None
            except Left:
                return interrupts.exit_code
    with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) takes no more output
        if as_json:
            emit_json(
                {
                    "session_id": session_id,
                    "agent_id": agent_id,
                    "status": result["status"],
                    "answer": result["answer"],
                    "error": result["error"],
                    "facts": [flat_fact(f) for f in facts],
                }
            )
        else:
            click.echo(click.style(f"session {session_id}", dim=True), err=True)
    if interrupts.signum is not None:
        return interrupts.exit_code
    return 0 if result["status"] == "completed" else 1


def shows_reasoning(asked: bool | None) -> bool:
    """Whether to print the model's reasoning: as asked (``--reasoning``), else only
    when stdout is a terminal (a pipe gets the answer alone)."""
    return sys.stdout.isatty() if asked is None else asked


def check_project(config: Any, status: Mapping[str, Any], socket: Path) -> None:
    """Refuse to dispatch through a daemon that serves another directory: its
    skills, aoscb.json and .env are that one's, not this one's."""
    here = str(config.project_dir)
    if status["project"] != here:
        raise CLIError(
            f"the daemon at {socket} serves {status['project']}, not this directory ({here}): "
            "run aos there, stop that daemon (`aos stop`), or give this project a home of its "
            "own (an aoscb.json here, or AOS_HOME)",
            code="conflict",
        )


async def open_session(client: Client, agent: str | None, session: str | None) -> tuple[str, str]:
    """``(session id, agent id)``: the named session, or a new one of the agent."""
    if session is not None:
        return session, (await client.call("session.get", {"id": session}))["agent_id"]
    agent_id = await resolve_agent(cli_errors(client.call), agent, create=True)
    return (await client.call("session.create", {"agent_id": agent_id}))["id"], agent_id


def flat_fact(entry: dict[str, Any]) -> dict[str, Any]:
    """A stored fact as one flat object: ``{seq, ts, kind, ...its fields}``."""
    return {"seq": entry["seq"], "ts": entry["ts"], **entry["fact"]}


def describe_history(facts: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A session's facts, a line each (more for multi-line text). Each command is
    shown once: where the model asked for it; its ``tool.call`` says only how it ran,
    and the command only when a ``tool.before`` hook rewrote it."""
    requested: dict[str, str] = {}
    for fact in facts:
        if fact["kind"] == "message.assistant":
            requested.update({c["id"]: c["command"] for c in fact.get("tool_calls") or ()})
        yield describe_fact(fact, requested)


def describe_fact(fact: dict[str, Any], requested: Mapping[str, str]) -> str:
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
        ran = fact["command"]
        rewritten = f", rewritten: $ {ran}" if requested.get(fact["call_id"], ran) != ran else ""
        return (
            f"{head} {fact['call_id']} in {fact['cwd']} (timeout {fact['timeout']:g}s){rewritten}"
        )

    if kind == "a2a.message":
        reply = f" reply to {fact['reply_to']}" if fact.get("reply_to") else ""
        return f"{head} {fact['from_agent']} -> {fact['to_agent']} ({fact['mode']}{reply}): {fact['text']}"
    if kind == "dispatch.finished":
        return f"{head} {fact['status']} {fact.get('error') or ''}"
    if kind == "mcp.call":
        took = f"{fact.get('duration_ms', 0):g} ms"
        return f"{head} {fact['server']} {fact['tool']} [{fact['status']}, {took}]"
    rest = {k: v for k, v in fact.items() if k not in ("seq", "ts", "kind")}
    return f"{head} {json.dumps(rest)[:200]}"


def read_message(message: str | None, path: Path | None) -> str:
    """The message to dispatch: MESSAGE, stdin (``-``, or no MESSAGE with stdin
    piped) or the file; empty or blank is a usage error."""
    if path is not None and message is not None:
        raise click.UsageError("give MESSAGE or --file, not both")
    if path is not None:
        try:
            text = _utf8(path.read_bytes(), f"in {path}")
        except OSError as exc:
            raise click.UsageError(f"cannot read the message from {path}: {exc}") from None
    elif message == "-" or (message is None and not sys.stdin.isatty()):
        text = _utf8(sys.stdin.buffer.read(), "on stdin")
    elif message is None:
        raise click.UsageError("give MESSAGE, `-` to read it from stdin, or --file PATH")
    else:  # bytes that are not UTF-8 reach argv as lone surrogates: the bytes again
        text = _utf8(os.fsencode(message), "given")
    if not text.strip():
        raise click.UsageError("the message is empty: give the text to send the agent")
    return text


def _utf8(raw: bytes, where: str) -> str:
    """The message's text; bytes that are not UTF-8 are a usage error, said with
    where they are (nothing is replaced or dropped behind the user's back)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise click.UsageError(
            f"the message {where} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}): convert it first, e.g. with iconv -f latin1 -t utf-8"
        ) from None


async def chat_loop(
    config: Any,
    agent: str | None,
    session: str | None,
    *,
    model: str | None = None,
    reasoning: bool = False,
    as_json: bool = False,
) -> int:
    """Dispatch each line typed; 0 at Ctrl-D, 128 + the signal when a signal leaves
    (Ctrl-C during a dispatch interrupts it and comes back to the prompt). With
    ``as_json``, no prompt and no stream: one JSON line per dispatch, the rest on
    stderr."""
    async with daemon_socket(config, embed=True) as socket_path:
        assert socket_path is not None
        async with Client(socket_path, token="") as client:
            status = await client.call("kernel.status")
            check_project(config, status, socket_path)
            session_id, _ = await open_session(client, agent, session)
            banner = f"session {session_id} — Ctrl-D to leave"
            click.echo(click.style(banner, dim=True), err=as_json)
            prompt = "" if as_json else "> "
            with Interrupts(client, status) as interrupts:
                try:
                    while (line := await interrupts.settled(read_line(prompt))) is not None:
                        if not line.strip():
                            continue
                        try:
                            result = await dispatch(
                                client,
                                session_id,
                                line,
                                printer=Printer(quiet=as_json, reasoning=reasoning),
                                interrupts=interrupts,
                                model=model,
                            )
                            if as_json:
                                keys = ("status", "answer", "error")
                                done = {"session_id": session_id, **{k: result[k] for k in keys}}
                                click.echo(json.dumps(done))
                        except SyscallFailed as exc:
                            if as_json:
                                error = {"code": exc.code, "message": exc.message}
                                click.echo(json.dumps({"error": error}))
                            else:
                                click.echo(f"{exc.code}: {exc.message}", err=True)
                        if not interrupts.carry_on():
                            break
                    else:  # Ctrl-D at the prompt: end its line, as a shell does
                        with contextlib.suppress(OSError):
                            click.echo(err=as_json)
                except Left:  # at the prompt: end its line, as a shell does after ^C
                    with contextlib.suppress(OSError):
                        click.echo(err=as_json)
            with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) takes no more
                click.echo(f"session {session_id}", err=as_json)
    return 0 if interrupts.signum is None else interrupts.exit_code


def read_line(prompt: str) -> asyncio.Future[str | None]:
    """The next line typed at the prompt (None at Ctrl-D), read in a thread of its
    own: a signal that leaves the loop does not wait for the line."""
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str | None] = loop.create_future()

    def deliver(text: str | None) -> None:
        if not line.done():
            line.set_result(text)

    def read() -> None:
        try:
            text: str | None = input()
        except (EOFError, OSError):  # Ctrl-D, or the terminal is gone
            text = None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(deliver, text)

    click.echo(prompt, nl=False)  # here, not in the thread: a signal's output comes after it
    sys.stdout.flush()
    threading.Thread(target=read, daemon=True).start()
    return line


agent_option = click.option(
    "-a", "--agent", help="Agent id or name (default: the 'default' agent)."
)

session_option = click.option("-s", "--session", help="Continue this session (default: a new one).")

model_option = click.option(
    "-m", "--model", help="Model id for these dispatches, instead of the agent's."
)

reasoning_option = click.option(
    "--reasoning/--no-reasoning",
    default=None,
    help="Show the model's reasoning (default: on a terminal only, never in a pipe).",
)


@cli.command()
@agent_option
@session_option
@model_option
@reasoning_option
@click.option(
    "-f",
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the message from this file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end.")
@click.argument("message", required=False)
@pass_context
def run(
    ctx: Any, agent: str | None, session: str | None, model: str | None,
    reasoning: bool | None, path: Path | None, as_json: bool, message: str | None,
) -> None:  # fmt: skip
    """Dispatch MESSAGE and stream the agent's work; prints the session id.

    MESSAGE `-`, or none with stdin piped, reads the message from stdin.

    \b
    Example:
      aos run "list the files here and summarize README.md"
    """
    text = read_message(message, path)
    show = shows_reasoning(reasoning)
    sys.exit(
        asyncio.run(
            run_once(ctx.config, agent, session, text, as_json=as_json, reasoning=show, model=model)
        )
    )


@cli.command()
@agent_option
@session_option
@model_option
@reasoning_option
@click.option("--json", "as_json", is_flag=True, help="A JSON line per dispatch; no prompt.")
@pass_context
def chat(
    ctx: Any, agent: str | None, session: str | None, model: str | None,
    reasoning: bool | None, as_json: bool,
) -> None:  # fmt: skip
    """An interactive loop on one session (Ctrl-D to leave).

    \b
    Example:
      aos chat -a researcher
    """
    show = shows_reasoning(reasoning)
    code = asyncio.run(
        chat_loop(ctx.config, agent, session, model=model, reasoning=show, as_json=as_json)
    )
    sys.exit(code)


@cli.group(name="session")
def session_group() -> None:
    """List and inspect sessions; interrupt a running dispatch.

    \b
    Example:
      aos session list
    """


@session_group.command(name="list")
@click.option("-a", "--agent", help="Only this agent's sessions (id or name).")
@click.option("-s", "--search", help="Only sessions whose title or messages contain this text.")
@json_option
@pass_context
def session_list(ctx: Any, agent: str | None, search: str | None, as_json: bool) -> None:
    """Sessions, newest activity first: id, status, agent, title, last activity.

    \b
    Example:
      aos session list -a researcher
      aos session list --search "quarterly report"
    """

    async def listing() -> tuple[list[dict[str, Any]], dict[str, str]]:
        async with admin(ctx.config) as syscall:
            params: dict[str, Any] = {"search": search}
            if agent:
                params["agent_id"] = await resolve_agent(syscall, agent)
            sessions = await syscall("session.list", params)
            names = {a["id"]: a["name"] for a in await syscall("agent.list", {})}
            ids = [s["id"] for s in sessions]
            for session, usage in zip(
                sessions, await syscall("session.usage", {"ids": ids}), strict=True
            ):
                session["usage"] = {k: v for k, v in usage.items() if k != "id"}
            return sessions, names

    sessions, names = asyncio.run(listing())
    if as_json:
        emit_json(sessions)
        return
    sessions.sort(key=lambda s: s["updated_at"], reverse=True)
    rows = [("ID", "STATUS", "AGENT", "ACTIVE", "TOKENS", "COST", "TITLE")]
    rows += [
        (
            s["id"],
            s["status"],
            str(names.get(s["agent_id"], s["agent_id"])),
            ago(s["updated_at"]),
            tokens(s["usage"]["input_tokens"] + s["usage"]["output_tokens"]),
            cost(s["usage"]["cost"]),
            s["title"] or "(no message yet)",
        )
        for s in sessions
    ]
    print_table(rows, empty='no sessions yet: `aos run "..."` starts one')


@session_group.command(name="show")
@click.argument("session_id")
@json_option
@pass_context
def session_show(ctx: Any, session_id: str, as_json: bool) -> None:
    """One session's control block, its tokens and cost by model and by dispatch.

    \b
    Example:
      aos session show ses_0123
    """

    async def showing() -> dict[str, Any]:
        async with admin(ctx.config) as syscall:
            scb = await syscall("session.get", {"id": session_id})
            [usage] = await syscall("session.usage", {"ids": [session_id]})
            history = await syscall("session.history", {"id": session_id})
            dispatches = [
                {k: h["fact"].get(k) for k in ("dispatch_id", "status", "usage")}
                for h in history
                if h["fact"]["kind"] == "dispatch.finished"
            ]
            del usage["id"]
            return {**scb, "usage": usage, "dispatches": dispatches}

    shown = asyncio.run(showing())
    if as_json:
        emit_json(shown)
        return
    usage, dispatches = shown.pop("usage"), shown.pop("dispatches")
    print_record(shown)
    click.echo(f"usage: {usage_line(usage)}")
    for model in usage["models"]:
        click.echo(f"  {model['model']}: {usage_line(model)}")
    for d in dispatches:
        spent = d["usage"] or {}
        line = f"{tokens(spent.get('prompt_tokens', 0))} in + {tokens(spent.get('completion_tokens', 0))} out"
        extra = f", {cost(spent['cost'])}" if spent.get("cost") is not None else ""
        click.echo(f"dispatch {d['dispatch_id']} ({d['status']}): {line}{extra}")


@session_group.command(name="history")
@click.argument("session_id")
@json_option
@pass_context
def session_history(ctx: Any, session_id: str, as_json: bool) -> None:
    """A session's facts, oldest first.

    \b
    Example:
      aos session history ses_0123 --json
    """
    entries = asyncio.run(call(ctx.config, "session.history", {"id": session_id}))
    facts = [flat_fact(e) for e in entries]
    if as_json:
        emit_json(facts)
        return
    for line in describe_history(facts):
        click.echo(line)


@session_group.command(name="context")
@click.argument("session_id")
@click.option("--rebuild", is_flag=True, help="Assemble from the whole history.")
@json_option
@pass_context
def session_context(ctx: Any, session_id: str, rebuild: bool, as_json: bool) -> None:
    """The messages the next step would send to the model.

    \b
    Example:
      aos session context ses_0123 --rebuild
    """
    messages = asyncio.run(
        call(ctx.config, "session.context", {"id": session_id, "rebuild": rebuild})
    )
    if as_json:
        emit_json(messages)
        return
    for m in messages:
        click.echo(click.style(f"[{m['role']}]", bold=True) + f" {m.get('content') or ''}")
        for call_ in m.get("tool_calls") or ():
            click.echo(f"  tool call {call_['id']}: {call_['function']['arguments']}")


@session_group.command(name="rename")
@click.argument("session_id")
@click.argument("title")
@json_option
@pass_context
def session_rename(ctx: Any, session_id: str, title: str, as_json: bool) -> None:
    """Give a session a new title (session.update).

    \b
    Example:
      aos session rename ses_0123 "Quarterly report"
    """
    scb = asyncio.run(call(ctx.config, "session.update", {"id": session_id, "title": title}))
    if as_json:
        emit_json(scb)
        return
    click.echo(f"session {scb['id']} is now titled {scb['title']!r}")


@session_group.command(name="interrupt")
@click.argument("session_id")
@json_option
@pass_context
def session_interrupt(ctx: Any, session_id: str, as_json: bool) -> None:
    """Stop the session's running dispatch (its running command is killed).

    \b
    Example:
      aos session interrupt ses_0123
    """
    outcome = asyncio.run(call(ctx.config, "session.interrupt", {"id": session_id}))
    if as_json:
        emit_json({"session_id": session_id, **outcome})
        return
    click.echo(f"interrupted dispatch {outcome['dispatch_id']} of session {session_id}")
