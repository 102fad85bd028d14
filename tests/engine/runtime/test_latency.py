"""How long `busybox true` takes through Runtime (monitor start, runtime create+start, exit, delete),
for each runtime, each launch mode, and the monitor's own interpreter start. Prints the medians
(`pytest -s` shows them); asserts only generous bounds, since CI machines are noisy."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import pytest

from tests.engine.runtime.conftest import RUNTIMES, Box, run
from workbench.engine.runtime import MONITOR, Runtime

RUNS = 20


def _median_ms(box: Box, runs: int = RUNS) -> float:
    async def once() -> float:
        cid, cdir = box.prepare(["true"])
        t0 = time.perf_counter()
        await box.runtime.start(cid, cdir, cdir)
        st = await box.runtime.wait_exit(cdir)
        took = time.perf_counter() - t0
        assert st.exit_code == 0
        return took * 1000
    run(once())                                    # warm-up: page cache, seccomp cache, bytecode
    return statistics.median(run(once()) for _ in range(runs))


@pytest.mark.parametrize("launch", ["run", "create-start"])
@pytest.mark.parametrize("binary", RUNTIMES)
def test_true_start_to_exit_latency(runc_box: Box, binary: str, launch: str) -> None:
    box = runc_box
    box.runtime = Runtime(box.runtime.root.parent / f"state-{binary}-{launch}", binary, launch=launch)
    median = _median_ms(box)
    print(f"\n{binary} ({launch}): median start→exit of busybox true over {RUNS} runs: {median:.1f} ms")
    assert median < 500


def test_monitor_interpreter_start() -> None:
    samples = []
    for _ in range(10):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-S", str(MONITOR)], capture_output=True)
        samples.append((time.perf_counter() - t0) * 1000)
    median = statistics.median(samples)
    print(f"\nmonitor.py interpreter start (to its usage error): {median:.1f} ms")
    assert median < 200
