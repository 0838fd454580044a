"""``a2a send | inbox | agents`` for agents (see SKILL.md).

Agents run this as a process per command (``scripts/a2a`` runs this file), so
its start-up is on the path of every message: arguments are read by hand
(argparse alone would add ~6 ms), the syscall goes through
:func:`aos_sdk.call` (a blocking socket, no asyncio), and the process leaves
without the interpreter's teardown (~2 ms).
"""

from __future__ import annotations

import sys

from aos_sdk.blocking import exit_now, run_skill_command

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs milliseconds per command
    from typing import Any

SKILL = "aos-a2a"
USAGE = """usage: a2a send AGENT MESSAGE (--silent | --notify | --wake) [--session SESSION]
       a2a inbox
       a2a agents

Messages between agents.
  send     send MESSAGE to AGENT (a name or an id): --silent (FYI), --notify
           (AGENT acts on it), --wake (AGENT acts and its answer comes back to
           you as a reply); --session SESSION delivers into that session
  inbox    messages you received
  agents   agents you may message"""
FOLLOW = {
    "silent": "it will see it the next time it runs",
    "notify": "it is handling it; no reply will come",
    "wake": "its answer will come back to you as a reply",
}


class UsageError(ValueError):
    pass


def _is_option(arg: str) -> bool:
    """As argparse reads it: a dash word without spaces ("--> see log" is text)."""
    return arg.startswith("-") and len(arg) > 1 and " " not in arg


def parse(argv: list[str]) -> tuple[str, dict[str, str | None]]:
    """The action and the params of its skill method."""
    if not argv:
        raise UsageError("an action is required: send, inbox or agents")
    action, rest = argv[0], argv[1:]
    if action in ("inbox", "agents"):
        if rest:
            raise UsageError(f"{action} takes no arguments (got {' '.join(rest)})")
        return action, {}
    if action != "send":
        raise UsageError(f"unknown action {action!r}: use send, inbox or agents")
    positional: list[str] = []
    modes: set[str] = set()
    session: str | None = None
    args = iter(rest)
    for arg in args:
        if arg == "--":
            positional += args
        elif not _is_option(arg):
            positional.append(arg)
        elif arg in ("--silent", "--notify", "--wake"):
            modes.add(arg[2:])
        elif arg == "--session":
            session = next(args, None)
            if session is None or _is_option(session):
                raise UsageError("--session needs a session id")
        elif arg.startswith("--session="):
            session = arg.split("=", 1)[1]
        else:
            raise UsageError(f"unknown option {arg}")
    if len(positional) != 2:
        raise UsageError("send takes AGENT and MESSAGE (quote the message)")
    if len(modes) != 1:
        raise UsageError("send needs exactly one of --silent, --notify, --wake")
    to, text = positional
    return "send", {"to": to, "text": text, "mode": modes.pop(), "session": session}


def show(action: str, result: Any) -> None:
    if action == "send":
        print(
            f"sent {result['message_id']} to {result['to_name']} ({result['mode']}): "
            f"{FOLLOW[result['mode']]}"
        )
    elif action == "inbox":
        for m in result:
            reply = f", reply to {m['reply_to']}" if m.get("reply_to") else ""
            print(f"{m['message_id']} from {m['from_name']} ({m['mode']}{reply}): {m['text']}")
    else:
        for a in result:
            print(f"{a['name']} ({a['id']}){' parent ' + a['parent'] if a['parent'] else ''}")


def main(argv: list[str]) -> int:
    return run_skill_command("a2a", SKILL, argv, parse, show, USAGE)


if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))
