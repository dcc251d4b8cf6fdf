"""One shared epoch ticker per engine, not a timer thread per task."""

from __future__ import annotations

import threading

import wasmtime

TICK_MS = 5


class EpochTicker:
    """Advances the engine's epoch every ``TICK_MS`` from one daemon thread.

    A store's deadline is a number of ticks, so a run's wall-clock limit is
    accurate to one tick. ``ticks`` counts the increments, which lets the
    runner tell from its own bookkeeping whether a run outlived its deadline.

    Args:
        engine: The engine whose epoch to advance.
        tick_ms: Milliseconds between increments.
    """

    def __init__(self, engine: wasmtime.Engine, tick_ms: int = TICK_MS) -> None:
        self._engine = engine
        self._interval = tick_ms / 1000
        self.tick_ms = tick_ms
        self.ticks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wasm-epoch-ticker", daemon=True)
        self._thread.start()

    def ticks_for(self, timeout_ms: int) -> int:
        """Ticks to allow for ``timeout_ms``.

        Rounded up, plus one: the first tick may come at any moment after a
        run starts, and the deadline must never fire before ``timeout_ms``.
        """
        return -(-timeout_ms // self.tick_ms) + 1

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._engine.increment_epoch()
            self.ticks += 1

    def close(self) -> None:
        """Stop ticking (running stores then never hit their deadline)."""
        self._stop.set()
        self._thread.join()
