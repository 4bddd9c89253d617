"""conf/ lives at the top of the repository and installs as mmexp.conf; users add their own config folder."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

from tests.conftest import REPO, run_cli

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_is_listed_and_conf_installs_as_mmexp_conf() -> None:
    """The package list is explicit (setuptools' finder cannot see mmexp.conf outside mmexp/): keep it complete."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "mmexp").rglob("__init__.py")}
    assert set(setuptools["packages"]) == on_disk | {"mmexp.conf"}
    assert setuptools["package-dir"] == {"mmexp.conf": "conf"}
    assert (REPO / "conf" / "train.yaml").is_file() and not (REPO / "mmexp" / "conf").exists()


def test_a_wheel_ships_every_config(tmp_path: Path) -> None:
    """What a non-editable install gets: every YAML under conf/ as mmexp/conf/..., nothing at a top-level conf/."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = tmp_path.glob("mmexp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {"mmexp/conf/" + p.relative_to(REPO / "conf").as_posix() for p in (REPO / "conf").rglob("*.yaml")}
    assert configs <= names and "mmexp/conf/__init__.py" in names
    assert not [n for n in names if n.startswith("conf/")]


def test_a_users_config_folder_adds_presets_from_any_directory(tmp_path: Path) -> None:
    """``--config-dir <dir>`` (Hydra's flag) puts the user's folder beside mmexp's configs."""
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /fusion: gated\nseed: 123\n"
    )
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    result = run_cli("mmexp.train", "--config-dir", str(tmp_path), "experiment=mine", "--cfg", "job", cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "seed: 123" in result.stdout and "GatedFusion" in result.stdout
