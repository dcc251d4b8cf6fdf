"""Row 1b: the raw nats-py loop plus the stored writes our guarantees need per message.

Like row 1, but each message first writes a claim record to a KV bucket
(create, expecting no revision), then publishes its result and awaits the
PubAck, then settles the record (update with the claim's revision), and only
then is acked: three stored writes per message instead of one, no sandbox, no
decoding, no decision records. It is the transport ceiling of the ledger
design on this machine (with ``fsync always`` every stored write is an fsync).
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import nats
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from .._job import DURABLE, IN_STREAM, out_subject, transform

BUCKET = "bench-runs"
# About the size of a real run record (JSON with digests, ids and times).
_RECORD = b"{" + b'"x":"' + b"r" * 580 + b'"}'


async def _handle(js: JetStreamContext, kv: KeyValue, msg: Msg) -> bool:
    key = f"k{msg.metadata.sequence.stream}"
    try:
        revision = await kv.update(key, _RECORD, last=0)
        ack = await js.publish_async(
            out_subject(msg.subject),
            transform(msg.data),
            headers={"Nats-Msg-Id": (msg.headers or {}).get("Nats-Msg-Id", "")},
        )
        await ack
        await kv.update(key, _RECORD, last=revision)
    except Exception:
        return False
    return True


async def main(url: str, batch: int) -> None:
    """Consume until SIGTERM."""
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=max(4000, batch * 2))
    kv = await js.key_value(BUCKET)
    sub = await js.pull_subscribe_bind(DURABLE, stream=IN_STREAM)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        try:
            msgs = await sub.fetch(batch, timeout=0.5)
        except nats.errors.TimeoutError:
            continue
        done = await asyncio.gather(*(_handle(js, kv, m) for m in msgs))
        for msg, ok in zip(msgs, done, strict=True):
            await (msg.ack() if ok else msg.nak())
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
