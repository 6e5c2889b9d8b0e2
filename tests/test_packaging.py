"""The wheel: it carries the shipped models (from the top-level models/ folder) and detects from an install."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_a_built_wheel_ships_the_models_and_detects(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "-w", str(tmp_path / "dist")], check=True)
    wheel = next((tmp_path / "dist").glob("eventcount-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("drums.pt", "drums.md", "steps.pt", "steps.md"):
        assert f"eventcount/models/{name}" in names
    assert "eventcount/annotate/static/index.html" in names
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "OMP_NUM_THREADS": "1"}
    where = subprocess.run([sys.executable, "-c", "import eventcount.models as m; print(m.__file__)"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(tmp_path / "site"))  # the installed copy, not this checkout
    for example in ("groove_example.flac", "song_example.flac"):  # a drum track, and a whole song
        audio = ROOT / "examples" / "audio" / example
        result = subprocess.run([sys.executable, "-m", "eventcount", "detect", str(audio)], env=env, cwd=tmp_path,
                                capture_output=True, text=True, check=True)
        lines = [line for line in result.stdout.splitlines() if not line.startswith("#")]
        assert len(lines) > 30 and {line.split("\t")[1] for line in lines} <= {"KD", "SD", "HH"}
