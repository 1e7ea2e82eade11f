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

from backend.cli import bind_refusal
from backend.settings import Settings
from harness.label_studio import LS_VERSION
from scripts.compose_env import fresh_env

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


VAR = re.compile(r"\$\{([A-Z_]+)(?::([?-])([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's own ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` substitution."""
    def sub(m: re.Match) -> str:
        name, op, arg = m.groups()
        if env.get(name):
            return env[name]
        if op == "?":
            raise KeyError(f"{name}: {arg}")
        return arg if op == "-" else ""
    return VAR.sub(sub, text)


ENV = fresh_env()  # what scripts/compose_env.py writes to .env


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(interpolate((REPO / "docker-compose.yml").read_text(), ENV))


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    return env if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


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
    assert f"127.0.0.1:{backend_port}:{backend_port}" in services["backend"]["ports"]
    assert any(a.startswith("backend.") for a in aliases if aliases[a] == "backend")


def test_label_studio_is_the_tested_version_and_accepts_the_backend(compose):
    ls = compose["services"]["label-studio"]
    assert ls["image"] == f"heartexlabs/label-studio:{LS_VERSION}"
    env = env_of(ls)
    assert env["ML_BLOCK_LOCAL_IP"] == "false" and env["SSRF_PROTECTION_ENABLED"] == "false"
    assert env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
    # The worker's key is the token Label Studio creates for its first user.
    assert env_of(compose["services"]["worker"])["LABEL_STUDIO_API_KEY"] == env["LABEL_STUDIO_USER_TOKEN"]
    redis = compose["services"]["redis"]
    assert "--appendonly" in redis["command"] and redis["volumes"]


def test_every_secret_is_required_not_defaulted():
    """No secret has a default: without .env, compose refuses to start (``${VAR:?...}``)."""
    text = (REPO / "docker-compose.yml").read_text()
    found = VAR.findall(text)
    secrets_ = {name for name, _, _ in found if re.search(r"PASS|TOKEN|KEY|SECRET", name)}
    assert secrets_ >= {"AL_BASIC_AUTH_PASS", "AL_WEBHOOK_TOKEN", "AL_REDIS_PASSWORD", "AL_POSTGRES_PASSWORD",
                        "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_TOKEN"}
    for name, op, _ in found:
        if name in secrets_:
            assert op == "?", f"{name} must be required (${{{name}:?...}}), not defaulted"
    with pytest.raises(KeyError, match="AL_"):
        interpolate(text, {})
    # scripts/compose_env.py sets every variable the file requires.
    required = {name for name, op, _ in found if op == "?"}
    assert required <= set(ENV), required - set(ENV)


def test_compose_env_script_writes_fresh_secrets_once(tmp_path):
    from scripts.compose_env import main

    path = tmp_path / ".env"
    assert main([str(path)]) == 0
    first = path.read_text()
    assert main([str(path)]) == 1 and path.read_text() == first  # never overwritten
    assert path.stat().st_mode & 0o077 == 0
    values = dict(line.split("=", 1) for line in first.splitlines())
    assert values["AL_BASIC_AUTH_PASS"] != fresh_env()["AL_BASIC_AUTH_PASS"] and len(values["AL_REDIS_PASSWORD"]) >= 32


def test_backend_is_served_with_basic_auth_and_webhook_token(compose):
    backend = compose["services"]["backend"]
    settings = Settings(**env_of(backend))
    assert settings.auth_enabled and settings.webhook_token.get_secret_value()
    host = backend["command"][backend["command"].index("--host") + 1]
    assert bind_refusal(host, settings) is None
    # Without the auth variables the same command would refuse to start.
    bare = {k: v for k, v in env_of(backend).items() if not k.startswith("BASIC_AUTH")}
    assert bind_refusal(host, Settings(**bare)) is not None
    assert all(p.startswith("127.0.0.1:") for p in backend["ports"]), "the dashboard port is for this machine only"


def test_redis_requires_a_password_the_backend_knows(compose):
    command = compose["services"]["redis"]["command"]
    password = command[command.index("--requirepass") + 1]
    assert password == ENV["AL_REDIS_PASSWORD"]
    for name in ("backend", "worker"):
        assert urlsplit(env_of(compose["services"][name])["REDIS_URL"]).password == password


def test_label_studio_runs_on_the_compose_postgres(compose):
    services = compose["services"]
    pg = services["postgres"]
    assert pg["image"].split(":")[0] == "postgres"
    ls = env_of(services["label-studio"])
    pg_env = env_of(pg)
    assert ls["DJANGO_DB"] == "default"
    assert (ls["POSTGRE_NAME"], ls["POSTGRE_USER"], ls["POSTGRE_PASSWORD"]) == (
        pg_env["POSTGRES_DB"], pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"])
    assert "postgres.al.internal" in pg["networks"]["al"]["aliases"] and ls["POSTGRE_HOST"] == "postgres.al.internal"
    assert ls["POSTGRE_PORT"] == "5432" and pg["volumes"]
    assert services["label-studio"]["depends_on"]["postgres"]["condition"] == "service_healthy"
