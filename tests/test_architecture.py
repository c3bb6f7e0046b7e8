"""The package graph keeps the layers of pyproject.toml's [tool.importlinter] contracts."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_packages_import_only_what_sits_below_them_in_the_data_flow():
    # in a subprocess: import-linter reconfigures logging, which would silence later tests' caplog
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
