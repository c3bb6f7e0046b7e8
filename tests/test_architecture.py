"""The package graph keeps the layers of pyproject.toml's [tool.importlinter] contracts."""
from __future__ import annotations

import os

from importlinter.cli import lint_imports

from tests.conftest import ROOT


def test_packages_import_only_what_sits_below_them_in_the_data_flow(capsys):
    cwd = os.getcwd()
    os.chdir(ROOT)  # import-linter reads pyproject.toml from the working directory
    try:
        code = lint_imports(no_cache=True, no_logo=True)
    finally:
        os.chdir(cwd)
    assert code == 0, capsys.readouterr().out[-4000:]
