"""The worker's garbage collector settings: start-up heap frozen, young collections rarer."""

from __future__ import annotations

import json
import subprocess
import sys

from gitstore_agents.service import YOUNG_THRESHOLD

_PROBE = """
import gc, json, weakref
from gitstore_agents.service import settle_heap
before = (gc.get_threshold(), gc.get_freeze_count())
settle_heap()

class Node:
    pass

# A cycle made after start-up is still collected.
a, b = Node(), Node()
a.other, b.other = b, a
alive = weakref.ref(a)
del a, b
gc.collect()
print(json.dumps({"before": before, "threshold": gc.get_threshold(),
                  "frozen": gc.get_freeze_count(), "cycle_collected": alive() is None}))
"""


def test_settle_heap_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    # In a child process: freezing is process-wide and would change this test run.
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    probe = json.loads(done.stdout)
    (young_before, *_), frozen_before = probe["before"]
    assert frozen_before == 0
    assert young_before < YOUNG_THRESHOLD
    assert probe["threshold"][0] == YOUNG_THRESHOLD
    assert probe["frozen"] > 1000  # the package, its schemas and dependencies
    assert probe["cycle_collected"] is True
