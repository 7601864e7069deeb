"""What a tally process imports: the command line and the sync flows start without pyarrow and
numpy (imported only where a lake file is checked or an S3 lake is used). numpy's BLAS starts
worker threads on import that spin for about a tenth of a CPU-second: a process that never
needs them should not pay for them, nor wait for their import."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("numpy", "pyarrow")


@pytest.mark.parametrize(
    "module", ["pipelines.cli", "pipelines.flows.sync", "pipelines.flows.public_trades"]
)
def test_the_command_line_and_the_sync_flows_import_neither_pyarrow_nor_numpy(
    module: str,
) -> None:
    probe = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == [], f"{module} imports {done.stdout.strip()}"
