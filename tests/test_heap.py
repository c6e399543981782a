"""`xtal.heap.keep_freed_memory`: freed memory is reused by the process, not faulted in again (the
cost it removes: page faults of NumPy temporaries, `benchmarks/bench_heap.py`), and the user's own
malloc tuning or ``XTAL_MALLOC=default`` is respected."""
import json
import os
import subprocess
import sys

import pytest

CHILD = r"""
import json, resource, sys
import numpy as np
from xtal.heap import keep_freed_memory
applied = keep_freed_memory()
np.ones(1000).sum()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    # one evaluation's temporaries: twenty arrays of 0.8 MB alive at once, then all freed
    tmp = [np.ones(100_000) for _ in range(20)]
    del tmp
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0}))
"""


def _run(**env_extra):
    env = {k: v for k, v in os.environ.items() if not (k.startswith("MALLOC_") and k.endswith("_"))}
    env.pop("XTAL_MALLOC", None)
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    default = _run(XTAL_MALLOC="default")
    kept = _run()
    assert default["applied"] is False and kept["applied"] is True
    # defaults: the freed 16 MB at the top of the heap are returned to the system after every
    # round and faulted in again (~4 000 pages per round, 40 rounds); kept: reused
    assert default["faults"] > 40 * 3000
    assert kept["faults"] < 0.1 * default["faults"]


def test_the_users_own_malloc_tuning_is_left_alone():
    assert _run(MALLOC_ARENA_MAX_="2")["applied"] is False


SPLIT_HEAP = r"""
import json
import numpy as np
from xtal.heap import keep_freed_memory, release_free_memory

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

applied = keep_freed_memory()
kept, in_flight = [], []
for k in range(40):
    # chunks' frames (4 MB each, from the heap under keep_freed_memory), three in flight, and
    # small objects that outlive them (the results) made while the oldest is freed: the freed
    # space is split up and a whole new chunk no longer fits in it
    in_flight.append(np.full(500_000 + 1000 * k, 1.0))
    if len(in_flight) > 3:
        del in_flight[0]
    kept.append([float(v) + k for v in range(3000)])
del in_flight
before = rss_mb()
released = release_free_memory()
print(json.dumps({"applied": applied, "before": before, "after": rss_mb(), "released": released}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim: Linux only")
def test_free_pages_between_kept_objects_are_handed_back():
    """What keeps the main process of a parallel series flat: `release_free_memory` hands back the
    free pages that small surviving objects left between freed buffers (glibc's malloc_trim)."""
    env = {k: v for k, v in os.environ.items() if not (k.startswith("MALLOC_") and k.endswith("_"))}
    env.pop("XTAL_MALLOC", None)
    out = subprocess.run([sys.executable, "-c", SPLIT_HEAP], capture_output=True, text=True,
                         check=True, env=env)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["applied"] is True and r["released"] is True
    assert r["before"] - r["after"] > 20.0, r
