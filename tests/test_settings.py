"""Defaults in one settings module, refused at startup when they are wrong (issue 14).

A bad ``AL_STRATEGY`` used to be accepted by ``al-backend serve`` and then
fail every project at ``/setup`` and in the worker; now the process does not
start, and the message names the variable.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from backend import project_options
from backend.project_options import ProjectOptions
from backend.settings import PROJECT_DEFAULTS, Settings


def _clean_env(monkeypatch) -> None:
    for name in ("AL_STRATEGY", "AL_HEAD_SIZE", "AL_WEIGHTS", "AL_CONTROL_SHARE", "AL_TRAIN_EVERY",
                 "AL_MIN_CONFIDENCE", "AL_KEEP_VERSIONS", "AL_TRAIN_INTERVAL", "AL_SET_SAMPLING"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("env", "named", "says"), [
    ({"AL_STRATEGY": "marginn"}, "AL_STRATEGY", "unknown strategy 'marginn'"),
    ({"AL_WEIGHTS": '{"margn": 1}'}, "AL_WEIGHTS", "unknown score name"),
    ({"AL_WEIGHTS": '{"margin": -1}'}, "AL_WEIGHTS", ">= 0"),
    ({"AL_HEAD_SIZE": "50000"}, "AL_HEAD_SIZE", "less than or equal to 20000"),
    ({"AL_CONTROL_SHARE": "1.5"}, "AL_CONTROL_SHARE", "less than or equal to 1"),
    ({"AL_TRAIN_EVERY": "0"}, "AL_TRAIN_EVERY", "greater than or equal to 1"),
])
def test_a_bad_project_default_is_refused_by_settings_naming_the_variable(monkeypatch, env, named, says):
    _clean_env(monkeypatch)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValidationError) as err:
        Settings()
    assert named in str(err.value) and says in str(err.value)


def test_project_options_start_from_the_settings_defaults(monkeypatch):
    _clean_env(monkeypatch)
    monkeypatch.setenv("AL_STRATEGY", "hybrid")
    monkeypatch.setenv("AL_WEIGHTS", '{"margin": 1, "density": 2}')
    monkeypatch.setenv("AL_HEAD_SIZE", "321")
    options = project_options.resolve(Settings(), {"train_every": 3})
    assert (options.strategy, options.weights, options.head_size, options.train_every) == (
        "hybrid", {"margin": 1.0, "density": 2.0}, 321, 3)


def test_the_options_defaults_are_the_settings_defaults(monkeypatch):
    """No second copy: an option left out of both environment and extra_params has the setting's default."""
    _clean_env(monkeypatch)
    bare = ProjectOptions()
    for name in PROJECT_DEFAULTS:
        assert getattr(bare, name) == Settings.model_fields[name].get_default(call_default_factory=True), name


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_al_backend_with_a_bad_strategy_exits_with_a_readable_message(command):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AL_")}
    env.update(AL_STRATEGY="marginn", REDIS_URL="redis://127.0.0.1:1/0")  # never reached: refused before
    proc = subprocess.run([sys.executable, "-m", "backend.cli", command], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "al-backend: configuration error: AL_STRATEGY: unknown strategy 'marginn'; known:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_setting_that_is_not_json_is_named_not_echoed():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AL_")}
    env.update(AL_WEIGHTS="{not json secret-ish")
    proc = subprocess.run([sys.executable, "-m", "backend.cli", "serve"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "AL_WEIGHTS: cannot be parsed" in proc.stderr and "secret-ish" not in proc.stderr
