"""How fast a module-upgrade preview runs, on a real upgrade of the enricher.

``python -m bench.preview [--events 3000]``:

1. starts a bundled nats-server and every role with the reference modules,
   and processes ``--events`` git events (one varied product file each, from
   ``bench/_products.py``): a compile, an enrichment and an extension result
   per event;
2. builds a candidate enricher from the reference source with two rule
   changes, the kind a catalog team makes: the tag ``recycled`` is dropped
   (results change), and ``CHF`` is no longer an accepted currency (products
   priced in it are now refused with ``input-rejected``);
3. runs ``gitstore-agents preview --kind catalog.enrich`` with it (the same
   ``ops.preview``), and prints its report and run time.

Building the candidate needs the ``ziglang`` package (``tasks/build.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import msgspec

from gitstore_agents.cli._history import render_preview
from gitstore_agents.config import CATALOG_ENRICH, load_config
from gitstore_agents.embedded import NatsServer, publish_git_event
from gitstore_agents.ops import Window, preview
from gitstore_agents.service import Runtime
from gitstore_agents.telemetry import configure_logging

from ._harness import wait_stream_count
from ._products import product_event

REPO_ROOT = Path(__file__).resolve().parent.parent

# (what the reference enricher says, what the candidate says): two rule changes.
RULE_CHANGES = (
    # Tags: "recycled" is no longer a tag the catalog shows.
    (
        "        if (norm->n > 0) jarr_push(all, norm);",
        '        if (norm->n > 0 && !(norm->n == 8 && memcmp(norm->u.s, "recycled", 8) == 0))\n'
        "            jarr_push(all, norm);",
    ),
    # Currencies: CHF is no longer accepted.
    ('{"CHF", 2},', ""),
)


def _load_build(tasks_dir: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("candidate_build", tasks_dir / "build.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def build_candidate(out_dir: Path) -> Path:
    """The reference enricher with ``RULE_CHANGES`` applied, built like the reference one."""
    work = out_dir / "source"
    # The build compiles relative to tasks/ and includes the kit from the
    # package: copy both, keeping their places, and change only the copy.
    shutil.copytree(REPO_ROOT / "tasks", work / "tasks")
    kit = Path("src") / "gitstore_agents" / "kit"
    shutil.copytree(REPO_ROOT / kit, work / kit)
    main_c = work / "tasks" / "catalog_enrich" / "main.c"
    source = main_c.read_text()
    for before, after in RULE_CHANGES:
        if before not in source:
            sys.exit(
                f"bench.preview: the enricher source changed; update RULE_CHANGES ({before!r})"
            )
        source = source.replace(before, after, 1)
    main_c.write_text(source)
    build = _load_build(work / "tasks")
    task = next(t for t in build.TASKS if t.name == "catalog-enrich")
    built: Path = build.build(task, out_dir)
    return built


async def run(events: int, data_dir: Path, candidate: Path, threads: int | None) -> str:
    """Process ``events``, then preview the candidate enricher; the report as text."""
    server = NatsServer(data_dir / "nats").start()
    try:
        config = load_config(env={}, overrides={"nats": {"url": server.url}})
        config = msgspec.structs.replace(
            config,
            health=msgspec.structs.replace(config.health, port=None),
            provision_on_start=True,
        )
        runtime = Runtime(config)
        stop = asyncio.Event()
        await runtime.start()
        serving = asyncio.create_task(runtime.run(stop))
        try:
            topology = config.topology
            started = time.perf_counter()
            for number in range(events):
                await publish_git_event(runtime.nc, topology, product_event(number, run="preview"))
            # Three results per event: compile, enrich, the sample extension.
            await wait_stream_count(
                runtime.js, topology.validation_stream, 3 * events, timeout_s=30 + events / 10
            )
            processed_s = time.perf_counter() - started
            started = time.perf_counter()
            report = await preview(
                runtime, CATALOG_ENRICH, f"file:{candidate}", Window(), threads=threads
            )
            preview_s = time.perf_counter() - started
        finally:
            stop.set()
            await serving
            await runtime.close()
    finally:
        server.stop()
    return (
        render_preview(report, 3)
        + f"\n\nhistory: {events} events processed in {processed_s:.1f} s "
        f"({3 * events} results); preview of {report.inputs} inputs: {preview_s:.2f} s "
        f"wall ({report.inputs / preview_s:,.0f} inputs/s) on {os.cpu_count()} CPUs"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the preview report with its timing."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="git events (default 3000)")
    parser.add_argument(
        "--threads", type=int, default=None, help="sandbox threads (default: one per core)"
    )
    args = parser.parse_args(argv)
    configure_logging(json=False, level="WARNING")
    with tempfile.TemporaryDirectory(prefix="gitstore-preview-") as tmp:
        candidate = build_candidate(Path(tmp))
        print(asyncio.run(run(args.events, Path(tmp), candidate, args.threads)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
