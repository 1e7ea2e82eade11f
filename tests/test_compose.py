"""docker-compose.yml, checked without a Docker engine: valid against the Compose
Specification's JSON schema, and everything it names exists and fits together."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from backend.config import Settings
from tests.e2e.label_studio import LS_VERSION

REPO = Path(__file__).resolve().parents[1]
SCHEMA_CACHE = REPO / ".cache" / "compose-spec" / "compose_spec.json"


def compose_schema() -> dict:
    """The Compose Specification schema, as shipped inside PyPI's docker-compose 1.29.2 (cached)."""
    if not SCHEMA_CACHE.exists():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp,
                            "docker-compose==1.29.2"], check=True, capture_output=True)
            (wheel,) = Path(tmp).glob("*.whl")
            raw = zipfile.ZipFile(wheel).read("compose/config/compose_spec.json")
        SCHEMA_CACHE.parent.mkdir(parents=True, exist_ok=True)
        SCHEMA_CACHE.write_bytes(raw)
    return json.loads(SCHEMA_CACHE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    return env if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def default_of(value: str) -> str:
    """``${VAR:-default}`` → ``default``."""
    m = re.fullmatch(r"\$\{[A-Z_]+:-(.*)\}", value)
    return m.group(1) if m else value


def validate(document: dict) -> None:
    # The schema says draft 2019-09 (as "...schema#", which jsonschema does not look up).
    jsonschema.Draft201909Validator(compose_schema()).validate(document)


def test_valid_against_the_compose_specification(compose):
    validate(compose)


def test_an_invalid_file_would_be_caught(compose):
    broken = {**compose, "services": {**compose["services"], "backend": {"image": 42, "portz": []}}}
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_build_contexts_and_dockerfile_exist(compose):
    for name in ("backend", "worker"):
        context = REPO / compose["services"][name]["build"]
        assert (context / "Dockerfile").is_file(), name
    dockerfile = (REPO / "Dockerfile").read_text()
    for src in re.findall(r"^COPY\s+(.+?)\s+\S+$", dockerfile, flags=re.M):
        for path in src.split():
            assert (REPO / path).exists(), f"Dockerfile copies {path}, which does not exist"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    for name in ("backend", "worker"):
        assert compose["services"][name]["command"][0] in scripts


def test_environment_variables_are_ones_the_backend_reads(compose):
    known = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        known.update(getattr(alias, "choices", None) or [alias])
    for name in ("backend", "worker"):
        unknown = set(env_of(compose["services"][name])) - known
        assert not unknown, f"{name} sets variables the backend never reads: {unknown}"


def test_hosts_resolve_to_dotted_aliases_and_ports_match(compose):
    services = compose["services"]
    aliases = {}
    for name, service in services.items():
        networks = service.get("networks")
        if isinstance(networks, dict):
            aliases.update({a: name for a in (networks.get("al") or {}).get("aliases", [])})
    env = env_of(services["backend"])
    for var, target, port in (("REDIS_URL", "redis", 6379), ("LABEL_STUDIO_URL", "label-studio", 8080)):
        url = urlsplit(env[var])
        assert "." in url.hostname, f"{var}: Label Studio rejects host names without a dot"
        assert aliases.get(url.hostname) == target and url.port == port
    backend_port = int(services["backend"]["command"][services["backend"]["command"].index("--port") + 1])
    assert f"{backend_port}:{backend_port}" in services["backend"]["ports"]
    assert any(a.startswith("backend.") for a in aliases if aliases[a] == "backend")


def test_label_studio_is_the_tested_version_and_accepts_the_backend(compose):
    ls = compose["services"]["label-studio"]
    assert ls["image"] == f"heartexlabs/label-studio:{LS_VERSION}"
    env = env_of(ls)
    assert env["ML_BLOCK_LOCAL_IP"] == "false" and env["SSRF_PROTECTION_ENABLED"] == "false"
    assert env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
    # The worker's key is the token Label Studio creates for its first user.
    assert default_of(env_of(compose["services"]["worker"])["LABEL_STUDIO_API_KEY"]) == default_of(
        env["LABEL_STUDIO_USER_TOKEN"])
    redis = compose["services"]["redis"]
    assert "--appendonly" in redis["command"] and redis["volumes"]
