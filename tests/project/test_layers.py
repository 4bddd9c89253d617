"""The layer contracts of pyproject.toml's [tool.importlinter] (docs/architecture.md), as .ci/run checks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from importlinter.application.use_cases import lint_imports
from importlinter.configuration import configure

REPO = Path(__file__).resolve().parents[2]
LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports('pyproject.toml', no_cache=True))"


def test_the_packages_keep_their_layers_and_import_no_cycle(capsys) -> None:
    configure()  # what the lint-imports command does first: the config readers and the graph builder
    passed = lint_imports(str(REPO / "pyproject.toml"), cache_dir=None, no_logo=True)
    assert passed, capsys.readouterr().out


def test_an_upward_import_even_inside_a_function_breaks_both_contracts(tmp_path: Path) -> None:
    """The check can fail: a copy of the package whose bottom layer imports the composition layer."""
    shutil.copytree(REPO / "mmexp", tmp_path / "mmexp", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    with open(tmp_path / "mmexp" / "core" / "naming.py", "a", encoding="utf-8") as f:
        f.write("\n\ndef _upward() -> None:\n    from mmexp.app import cli  # noqa: F401\n")
    result = subprocess.run([sys.executable, "-c", LINT], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "mmexp.core is not allowed to import mmexp.app" in result.stdout
    assert "mmexp.core.naming -> mmexp.app.cli" in result.stdout  # the copy was checked, not the installed package
    assert "No cycles are allowed in mmexp." in result.stdout and ".core -> .app" in result.stdout
