"""Row 1: a raw nats-py loop with correct ack discipline, the transport ceiling.

Fetch a batch, publish every result asynchronously, await all PubAcks, then ack
the inputs.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import nats
import nats.errors

from .._job import DURABLE, IN_STREAM, out_subject, transform


async def main(url: str, batch: int) -> None:
    """Consume until SIGTERM."""
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=max(4000, batch * 2))
    sub = await js.pull_subscribe_bind(DURABLE, stream=IN_STREAM)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        try:
            msgs = await sub.fetch(batch, timeout=0.5)
        except nats.errors.TimeoutError:
            continue
        futures = [
            await js.publish_async(
                out_subject(m.subject),
                transform(m.data),
                headers={"Nats-Msg-Id": (m.headers or {}).get("Nats-Msg-Id", "")},
            )
            for m in msgs
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        for msg, result in zip(msgs, results, strict=True):
            if isinstance(result, BaseException):
                await msg.nak()
            else:
                await msg.ack()
    # Acks are plain publishes: flush them, then close (drain waits on the pull
    # subscription's pending fetch and can outlast the harness's patience).
    await nc.flush()
    await nc.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    asyncio.run(main(args.nats_url, args.batch))
