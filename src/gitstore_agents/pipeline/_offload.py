"""Where a sandbox run happens: inline on the event loop when it is surely short, else a thread.

Handing a run to a thread pool costs far more than a short run itself: on a
2-core VM a no-op module runs in about 30 µs of CPU on the calling thread but
costs 130-230 µs through ``run_in_executor`` (thread wake-ups both ways, and
the GIL changing hands between the loop and the sandbox thread at every C call
that releases it). Most catalog tasks are short (``markdown-compile``: 0.4-1 M
fuel, 0.2-0.9 ms), so:

* a run is first tried **inline** with its fuel capped at ``INLINE_FUEL`` (about
  0.5-2 ms of guest work: fuel bounds how long the loop is blocked, the wall
  clock does not need to);
* if it finishes within that fuel, its result is final — fuel only decides
  *when* a run traps, so the same module, input, logical time and seed end the
  same way with more fuel (the fuel reported is the fuel consumed, the same
  either way);
* if the cap runs out first (and the task was allowed more), the run starts
  over on a sandbox **thread** with the task's own limits; the inline attempt's
  work is wasted, bounded by ``INLINE_FUEL``.

Modules whose recent runs needed more than the cap are sent to threads
directly, and inline runs only happen while a sandbox pool slot is surely
free, so the loop never waits for one.
"""

from __future__ import annotations

import asyncio
import collections
import functools
from concurrent.futures import Executor

import msgspec

from ..config import INLINE_FUEL
from ..sandbox import POOL_SLOTS, CompiledModule, Outcome, RunResult, Sandbox, SandboxLimits

# Recent runs per module that decide whether an inline attempt is worth it.
_WINDOW = 32
# Inline attempts stop for a module once this many recent runs outgrew the cap.
_MAX_OVERRUNS = 2

# Runs in sandbox threads, per sandbox (every handler of a process shares one
# sandbox and runs on one event loop, so a plain counter is enough).
_threaded: collections.Counter[int] = collections.Counter()


class SandboxOffload:
    """Runs modules inline when they are surely short, on ``executor`` threads otherwise.

    Args:
        sandbox: The sandbox every run goes through.
        executor: Threads for runs that may be long.
        inline_fuel: Fuel cap of inline attempts (0 disables them).
    """

    def __init__(
        self, sandbox: Sandbox, executor: Executor, *, inline_fuel: int = INLINE_FUEL
    ) -> None:
        self._sandbox = sandbox
        self._executor = executor
        self._inline_fuel = inline_fuel
        # module digest -> whether each recent run needed more than the cap.
        self._overran: dict[str, collections.deque[bool]] = {}
        # module digest -> fuel of its recent runs (what a run of it is likely to cost).
        self._fuel: dict[str, collections.deque[int]] = {}
        self.inline_runs = 0
        self.thread_runs = 0
        self.fallbacks = 0

    def expected_fuel(self, digest: str) -> int | None:
        """The most fuel a recent run of module ``digest`` used (None: no run seen yet)."""
        recent = self._fuel.get(digest)
        return max(recent) if recent else None

    async def run(
        self,
        module: CompiledModule,
        stdin: bytes,
        limits: SandboxLimits,
        *,
        logical_time_ns: int,
        seed: int,
    ) -> RunResult:
        """Run ``module`` on ``stdin`` within ``limits``; the same result wherever it ran."""
        recent = self._overran.get(module.digest)
        if recent is None:
            recent = self._overran[module.digest] = collections.deque(maxlen=_WINDOW)
        tried_inline = self._inline_ok(recent)
        if tried_inline:
            capped = limits.fuel > self._inline_fuel
            attempt = _with_fuel(limits, self._inline_fuel) if capped else limits
            result = self._sandbox.run(
                module, stdin, attempt, logical_time_ns=logical_time_ns, seed=seed
            )
            self.inline_runs += 1
            overran = capped and result.outcome is Outcome.FUEL_EXHAUSTED
            recent.append(overran)
            if not overran:
                self._remember(module.digest, result)
                return result
            self.fallbacks += 1
        key = id(self._sandbox)
        _threaded[key] += 1
        try:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                self._executor, self._run_in_thread, module, stdin, limits, logical_time_ns, seed
            )
        finally:
            _threaded[key] -= 1
        self.thread_runs += 1
        if not tried_inline and result.outcome is not Outcome.DEADLINE_EXCEEDED:
            # What an inline attempt would have done: lets a module come back inline.
            recent.append(result.fuel_used > self._inline_fuel)
        self._remember(module.digest, result)
        return result

    def _remember(self, digest: str, result: RunResult) -> None:
        if result.outcome is not Outcome.DEADLINE_EXCEEDED:
            fuel = self._fuel.get(digest)
            if fuel is None:
                fuel = self._fuel[digest] = collections.deque(maxlen=_WINDOW)
            fuel.append(result.fuel_used)

    def _inline_ok(self, recent: collections.deque[bool]) -> bool:
        # Every thread run holds a pool slot; inline runs happen one at a time
        # on this thread, so with fewer than POOL_SLOTS thread runs a slot is free.
        return (
            self._inline_fuel > 0
            and sum(recent) <= _MAX_OVERRUNS
            and _threaded[id(self._sandbox)] < POOL_SLOTS
        )

    def _run_in_thread(
        self,
        module: CompiledModule,
        stdin: bytes,
        limits: SandboxLimits,
        logical_time_ns: int,
        seed: int,
    ) -> RunResult:
        return self._sandbox.run(module, stdin, limits, logical_time_ns=logical_time_ns, seed=seed)


@functools.lru_cache(maxsize=64)
def _with_fuel(limits: SandboxLimits, fuel: int) -> SandboxLimits:
    return msgspec.structs.replace(limits, fuel=fuel)
