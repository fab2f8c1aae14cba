#!/usr/bin/env python3
"""Batched JetStream load for benches/peers/run.sh (nats-py).

produce: per batch, BATCH-1 plain publishes on the stream's subject and one JetStream
publish that waits for its ack (per-connection ordering makes that ack cover the batch):
one acknowledgement per batch, as a distlog produce request.
consume: a pull consumer without acks, fetching BATCH messages per request.
Prints one JSON line: {"records": N, "seconds": S, "records_per_sec": R, "mb_per_sec": M}.
"""
import argparse
import asyncio
import json
import time

import nats
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["produce", "consume"])
    p.add_argument("--url", default="nats://127.0.0.1:14222")
    p.add_argument("--stream", default="bench")
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--count", type=int, default=100000)
    p.add_argument("--batch", type=int, default=1000)
    a = p.parse_args()
    nc = await nats.connect(a.url, max_reconnect_attempts=0)
    js = nc.jetstream(timeout=30)
    subject = f"{a.stream}.data"
    payload = b"x" * a.size
    if a.mode == "produce":
        try:
            await js.delete_stream(a.stream)
        except Exception:
            pass
        await js.add_stream(StreamConfig(name=a.stream, subjects=[subject], storage=StorageType.FILE))
        start = time.perf_counter()
        sent = 0
        while sent < a.count:
            n = min(a.batch, a.count - sent)
            for _ in range(n - 1):
                await nc.publish(subject, payload)
            await js.publish(subject, payload)
            sent += n
        seconds = time.perf_counter() - start
        info = await js.stream_info(a.stream)
        assert info.state.messages == a.count, f"stream has {info.state.messages} messages"
    else:
        sub = await js.pull_subscribe(
            subject, durable="bench", config=ConsumerConfig(ack_policy=AckPolicy.NONE)
        )
        start = time.perf_counter()
        got = 0
        while got < a.count:
            msgs = await sub.fetch(min(a.batch, a.count - got), timeout=30)
            got += len(msgs)
        seconds = time.perf_counter() - start
        sent = got
    await nc.close()
    print(json.dumps({
        "records": sent,
        "seconds": seconds,
        "records_per_sec": sent / seconds,
        "mb_per_sec": sent * a.size / seconds / 1e6,
    }))


asyncio.run(main())
