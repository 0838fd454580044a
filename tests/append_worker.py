"""A separate process for the durability test: appends facts forever, reporting
each seq only after ``append`` has returned (i.e. after the commit)."""

from __future__ import annotations

import asyncio
import sys

from aos.agent import ACB
from aos.facts import UserMessage
from aos.ids import new_id
from aos.session import SCB
from aos.store import open_store


async def main(url: str, writers: int) -> None:
    store = await open_store(url)
    agent = await store.create_agent(ACB(id=new_id("agt"), name=new_id("durable")))
    session = await store.create_session(SCB(id=new_id("ses"), agent_id=agent.id))
    print(f"session {session.id}", flush=True)

    async def writer(w: int) -> None:
        n = 0
        while True:
            text = f"writer {w} fact {n}"
            seq = await store.append(session.id, UserMessage(text=text))
            sys.stdout.write(f"{seq}\t{text}\n")
            sys.stdout.flush()
            n += 1

    await asyncio.gather(*(writer(w) for w in range(writers)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
