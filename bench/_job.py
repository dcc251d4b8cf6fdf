"""The benchmark job shared by every baseline row.

Each input message on ``bench.in.<n>`` becomes one output message on
``bench.out.<n>`` carrying the input's ``Nats-Msg-Id``; the input is acked only
after the output's PubAck. Timing uses the server's storage timestamps of both
messages, so no client clock is involved.
"""

from __future__ import annotations

IN_STREAM = "BENCH_IN"
OUT_STREAM = "BENCH_OUT"
IN_SUBJECTS = "bench.in.>"
OUT_SUBJECTS = "bench.out.>"
DURABLE = "bench"


def out_subject(in_subject: str) -> str:
    """Output subject for an input subject (``bench.in.x`` → ``bench.out.x``)."""
    return "bench.out." + in_subject.removeprefix("bench.in.")


def transform(payload: bytes) -> bytes:
    """The 'work': a cheap, deterministic rewrite of the payload."""
    return b'{"result":' + payload + b"}"
