"""``a2a send | inbox | agents`` for agents (see SKILL.md)."""

from __future__ import annotations

import argparse
import sys

from aos_sdk import NotConnected, SyscallFailed, call

SKILL = "aos-a2a"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="a2a", description="Messages between agents.")
    sub = parser.add_subparsers(dest="action", required=True)
    send = sub.add_parser("send", help="send a message to an agent")
    send.add_argument("agent", help="name or id of the receiving agent")
    send.add_argument("message")
    mode = send.add_mutually_exclusive_group(required=True)
    for flag in ("silent", "notify", "wake"):
        mode.add_argument(f"--{flag}", dest="mode", action="store_const", const=flag)
    send.add_argument("--session", help="deliver into this session of the agent")
    sub.add_parser("inbox", help="messages you received")
    sub.add_parser("agents", help="agents you may message")
    args = parser.parse_args(argv)
    try:
        if args.action == "send":
            params = {
                "to": args.agent,
                "text": args.message,
                "mode": args.mode,
                "session": args.session,
            }
            sent = call("skill.call", {"skill": SKILL, "method": "send", "params": params})
            follow = {
                "silent": "it will see it the next time it runs",
                "notify": "it is handling it; no reply will come",
                "wake": "its answer will come back to you as a reply",
            }[args.mode]
            print(f"sent {sent['message_id']} to {sent['to_name']} ({args.mode}): {follow}")
        elif args.action == "inbox":
            for m in call("skill.call", {"skill": SKILL, "method": "inbox", "params": {}}):
                reply = f", reply to {m['reply_to']}" if m.get("reply_to") else ""
                print(f"{m['message_id']} from {m['from_name']} ({m['mode']}{reply}): {m['text']}")
        else:
            for a in call("skill.call", {"skill": SKILL, "method": "agents", "params": {}}):
                print(f"{a['name']} ({a['id']}){' parent ' + a['parent'] if a['parent'] else ''}")
        return 0
    except (SyscallFailed, NotConnected) as exc:
        print(f"a2a: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
