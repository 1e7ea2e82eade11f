"""The layering rules, checked in ``make test`` (issue 14).

* the service (``backend.service``) and the worker (``worker``) never import
  each other, and ``backend`` never imports ``worker``: jobs are enqueued by
  dotted name, as RQ does;
* nothing outside ``tests`` imports ``tests`` (the Label Studio harness the
  demo, benches and e2e tests share lives in ``harness/``);
* ``backend.selection`` and ``backend.learning`` do no I/O: no Redis, no
  HTTP, no state, no service;
* only ``backend/state/`` spells Redis keys.

The import rules are import-linter contracts in ``pyproject.toml``; the
last rule is about strings, not imports, so it is read from the source here,
and so is the ``tests`` rule for ``bench/``, which is not a package.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ("backend", "worker", "harness", "scripts", "bench")
# A key spelled by hand: ProjectStore.key(...) called from outside the state package,
# the project namespace "<prefix>:p:<id>", or an f-string starting with a deployment's prefix.
KEY_SPELLING = re.compile(r"\.key\(|:p:|\{[\w.]*prefix\}:")


def _sources(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (REPO / root).rglob("*.py"))


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout, proc.stdout


def test_only_the_state_package_spells_redis_keys():
    state = REPO / "backend" / "state"
    offenders = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in _sources(*PRODUCT) if state not in path.parents
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if KEY_SPELLING.search(line)
    ]
    assert not offenders, "Redis keys spelled outside backend/state:\n" + "\n".join(offenders)


def test_the_key_check_would_catch_a_key_spelled_by_hand():
    """The pattern above is not vacuous: each way keys used to be spelled is caught."""
    for line in ('store.r.get(store.key("progress:summary"))', 'r.delete(f"{prefix}:p:{pid}:topup_pending")',
                 'r.set(f"{settings.key_prefix}:scheduler_tick", 1)'):
        assert KEY_SPELLING.search(line), line


def test_nothing_outside_tests_imports_tests():
    """bench/ is not a package import-linter can see: read its imports (and everyone else's, again)."""
    offenders = []
    for path in _sources(*PRODUCT):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{path.relative_to(REPO)}:{node.lineno}: {n}" for n in names
                          if n == "tests" or n.startswith("tests.")]
    assert not offenders, "product code imports tests:\n" + "\n".join(offenders)
