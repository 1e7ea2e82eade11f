"""A real Label Studio for the end-to-end tests (draft)."""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LS_VERSION = os.environ.get("AL_LS_VERSION", "1.23.2")
REPO = Path(__file__).resolve().parents[2]


def ls_home() -> Path:
    return Path(os.environ.get("AL_LS_HOME") or REPO / ".cache" / "label-studio")


def _base_python() -> str:
    cand = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    if cand.exists():
        return str(cand)
    return getattr(sys, "_base_executable", None) or sys.executable


@contextmanager
def _locked(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_label_studio() -> Path:
    home = ls_home()
    venv = home / "venv"
    marker = venv / ".al-installed"
    want = f"label-studio=={LS_VERSION}"
    with _locked(home):
        if marker.exists() and marker.read_text().strip() == want:
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        t0 = time.monotonic()
        print(f"[label-studio] installing {want} into {venv}", file=sys.stderr, flush=True)
        subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True)
        py = str(venv / "bin" / "python")
        log = home / "install.log"
        with open(log, "w") as out:
            subprocess.run([py, "-m", "pip", "install", "--upgrade", "pip"], check=True, stdout=out, stderr=subprocess.STDOUT)
            subprocess.run([py, "-m", "pip", "install", want], check=True, stdout=out, stderr=subprocess.STDOUT)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(want + "\n")
        tmp.replace(marker)
        print(f"[label-studio] installed in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
        return venv
