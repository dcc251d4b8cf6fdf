"""Row 2: the same job in FastStream, the framework a Python user would pick.

A JetStream pull subscriber; the handler publishes the result (awaiting its
PubAck) and FastStream acks the input after the handler returns.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub

from .._job import DURABLE, IN_STREAM, IN_SUBJECTS, OUT_STREAM, out_subject, transform


async def main(url: str, batch: int) -> None:
    """Consume until SIGTERM."""
    # No per-message access log: its stderr writes would dominate the measurement.
    broker = NatsBroker(url, logger=None)

    @broker.subscriber(
        IN_SUBJECTS,
        stream=JStream(IN_STREAM, declare=False),
        durable=DURABLE,
        pull_sub=PullSub(batch_size=batch, timeout=0.5),
        ack_policy=AckPolicy.ACK,
    )
    async def handle(body: Any, msg: NatsMessage) -> None:
        # FastStream decodes JSON bodies for the handler (as its users rely on);
        # the job republishes the original bytes, like the other rows.
        raw = msg.raw_message
        await broker.publish(
            transform(msg.body),
            subject=out_subject(raw.subject),
            stream=OUT_STREAM,
            headers={"Nats-Msg-Id": (raw.headers or {}).get("Nats-Msg-Id", "")},
        )

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await broker.start()
    await stop.wait()
    await broker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    asyncio.run(main(args.nats_url, args.batch))
