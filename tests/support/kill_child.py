"""A child process for the crash test: append through the SQLite journal, report acks.

Prints `ack <command id> <aggregate>` after each command is acknowledged
(durable), flushing every line. It stops by itself after `--commands`.
"""

from __future__ import annotations

import argparse
import sys

import trio

from hostsmith.actors.proof.loadtest import COUNTER, Increment
from hostsmith.runtime import open_runtime
from hostsmith.stores import open_store


async def main(url: str, commands: int, clients: int, aggregates: int) -> None:
    async with open_store(url) as store, open_runtime(store, kinds=[COUNTER]) as runtime:

        async def client(k: int) -> None:
            for n in range(k, commands, clients):
                command_id = f"cmd-{n}"
                aggregate = str(n % aggregates)
                await runtime.get(COUNTER, aggregate).execute(Increment(), command_id=command_id)
                sys.stdout.write(f"ack {command_id} {aggregate}\n")
                sys.stdout.flush()

        async with trio.open_nursery() as nursery:
            for k in range(clients):
                nursery.start_soon(client, k)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--aggregates", type=int, default=20)
    options = parser.parse_args()
    trio.run(main, options.url, options.commands, options.clients, options.aggregates)
