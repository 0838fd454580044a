"""``skill list | load NAME | unload NAME`` for agents (see SKILL.md)."""

from __future__ import annotations

import argparse
import os
import sys

from aos_sdk import NotConnected, SyscallFailed, call


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="skill", description="Discover and load skills.")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="skills you can load")
    for action in ("load", "unload"):
        sub.add_parser(action, help=f"{action} a skill in this session").add_argument("name")
    args = parser.parse_args(argv)
    session_id = os.environ.get("AOS_SESSION_ID")
    try:
        if args.action == "list":
            loaded = set()
            if session_id:
                history = call("session.history", {"id": session_id})
                for entry in history:
                    fact = entry["fact"]
                    if fact["kind"] == "skill.loaded":
                        loaded.add(fact["skill"])
                    elif fact["kind"] == "skill.unloaded":
                        loaded.discard(fact["skill"])
            for skill in call("skill.list"):
                if skill["status"] == "active":
                    mark = "*" if skill["name"] in loaded else " "
                    print(f"{mark} {skill['name']}: {skill['description']}")
            return 0
        params = {"name": args.name, "session_id": session_id}
        call(f"skill.{args.action}", params)
        if args.action == "load":
            detail = call("skill.get", {"name": args.name})
            print(f"loaded {args.name}; its instructions:\n\n{detail['body']}")
            if detail.get("scripts"):
                print(f"\nits scripts are on your PATH: {detail['scripts']}")
        else:
            print(f"unloaded {args.name}")
        return 0
    except (SyscallFailed, NotConnected) as exc:
        print(f"skill: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
