#!/usr/bin/env python3
"""The floor under the isolated path: a bare round trip between two Python processes.

No bastion code: a parent and a forked child exchange ``--bytes`` bytes over a Unix
socketpair, ``--trips`` times, each side answering at once. What is left of the
isolated tick-to-order once this is taken away is bastion's own work. Prints one JSON
line, p50 / p99 round trip in µs for each shape:

- ``asyncio_poll``: the shape of the node: the parent on an asyncio loop
  (``add_reader``, a future per reply), the child in a ``select.poll`` loop, both
  sleeping between messages;
- ``blocking``: both in blocking ``recv``;
- ``child_spins``: the child polls its socket without sleeping (no wakeup to pay on
  its side);
- ``one_cpu``: ``asyncio_poll`` with both processes pinned to one CPU (a switch on
  that CPU instead of a wakeup on the other).

    python bench/ipc_floor.py [--trips 20000] [--bytes 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import socket
import time
from collections.abc import Callable


def _child(sock: socket.socket, mode: str) -> None:
    if mode == "spin":
        sock.setblocking(False)
        while True:
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                continue
            if not data:
                return
            sock.sendall(data)
    sock.setblocking(True)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    while True:
        if mode == "poll":
            poller.poll(-1)
        data = sock.recv(1 << 16)
        if not data:
            return
        sock.sendall(data)


def _blocking(sock: socket.socket, trips: int, message: bytes) -> list[int]:
    perf = time.perf_counter_ns
    samples = []
    for _ in range(trips):
        t0 = perf()
        sock.sendall(message)
        sock.recv(1 << 16)
        samples.append(perf() - t0)
    return samples


async def _asyncio(sock: socket.socket, trips: int, message: bytes) -> list[int]:
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    perf = time.perf_counter_ns
    samples: list[int] = []
    waiter: list[asyncio.Future[int]] = []

    def on_readable() -> None:
        sock.recv(1 << 16)
        waiter.pop().set_result(perf())

    loop.add_reader(sock.fileno(), on_readable)
    for _ in range(trips):
        waiter.append(loop.create_future())
        t0 = perf()
        sock.send(message)
        samples.append(await waiter[0] - t0)
    loop.remove_reader(sock.fileno())
    return samples


def _shape(
    child_mode: str, parent: Callable[[socket.socket], list[int]], cpus: set[int] | None
) -> dict[str, float]:
    mine, theirs = socket.socketpair()
    before = os.sched_getaffinity(0)
    if cpus is not None:
        os.sched_setaffinity(0, cpus)  # the child inherits it
    pid = os.fork()
    if pid == 0:
        mine.close()
        _child(theirs, child_mode)
        os._exit(0)
    theirs.close()
    try:
        samples = sorted(parent(mine))
    finally:
        mine.close()
        os.waitpid(pid, 0)
        os.sched_setaffinity(0, before)
    return {
        "p50_us": round(samples[len(samples) // 2] / 1000, 1),
        "p99_us": round(samples[int(len(samples) * 0.99)] / 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=20_000)
    parser.add_argument("--bytes", type=int, default=60)
    parser.add_argument("--quick", action="store_true", help="a short run (a smoke test)")
    args = parser.parse_args()
    trips = 500 if args.quick else args.trips
    message = b"x" * args.bytes

    def on_loop(sock: socket.socket) -> list[int]:
        return asyncio.run(_asyncio(sock, trips, message))

    def blocking(sock: socket.socket) -> list[int]:
        return _blocking(sock, trips, message)

    one_cpu = {min(os.sched_getaffinity(0))}
    result = {
        "bench": "ipc_floor",
        "trips": trips,
        "bytes": args.bytes,
        "asyncio_poll": _shape("poll", on_loop, None),
        "blocking": _shape("recv", blocking, None),
        "child_spins": _shape("spin", on_loop, None),
        "one_cpu": _shape("poll", on_loop, one_cpu),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
