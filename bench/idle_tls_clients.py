#!/usr/bin/env python3
"""Open N TLS connections to 127.0.0.1:PORT, complete each handshake, then hold them idle.

Used by bench/proxy.sh to compare a proxy's resident memory with many idle TLS clients.
Prints "open <count> failed <count>" once every connection has been tried, then holds the
open ones until SIGTERM arrives or --hold seconds pass (bounded).

Usage: idle_tls_clients.py PORT COUNT [--hold SECONDS] [--parallel K] [--server-name NAME]
"""
import argparse
import asyncio
import signal
import ssl
import sys


async def open_one(port: int, context: ssl.SSLContext, name: str, gate: asyncio.Semaphore, held: list, errors: list) -> None:
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=name), timeout=30)
            held.append(writer)  # open_connection returns after the TLS handshake completes
        except Exception as error:  # noqa: BLE001 - count and report every kind of failure
            errors.append(f"{type(error).__name__}: {error}")


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--hold", type=float, default=300.0)
    parser.add_argument("--parallel", type=int, default=100)
    parser.add_argument("--server-name", default="bench.example.org")
    args = parser.parse_args()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the bench uses a throwaway root; wrk does not verify either

    gate = asyncio.Semaphore(args.parallel)
    held: list = []
    errors: list = []
    await asyncio.gather(*(open_one(args.port, context, args.server_name, gate, held, errors) for _ in range(args.count)))
    print(f"open {len(held)} failed {len(errors)}", flush=True)
    for message in sorted(set(errors))[:3]:
        print(f"  e.g. {message}", file=sys.stderr, flush=True)

    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    try:
        await asyncio.wait_for(done.wait(), timeout=args.hold)
    except asyncio.TimeoutError:
        pass
    for writer in held:
        writer.transport.abort()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
