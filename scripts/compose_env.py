"""Write ``.env`` for ``docker compose up`` with fresh random secrets (never overwrites one).

docker-compose.yml requires every secret (``${VAR:?...}``) instead of
shipping defaults, so a stack is never up with a known password.  This
script makes the first start one command.  Secrets are hex, so they are safe
inside URLs (``REDIS_URL``) and shell words.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fresh_env() -> dict[str, str]:
    """Every variable docker-compose.yml requires, with new random secrets."""
    return {
        "LABEL_STUDIO_USERNAME": "admin@example.com",
        "LABEL_STUDIO_PASSWORD": secrets.token_hex(12),
        "LABEL_STUDIO_TOKEN": secrets.token_hex(20),
        "AL_BASIC_AUTH_USER": "label-studio",
        "AL_BASIC_AUTH_PASS": secrets.token_hex(20),
        "AL_WEBHOOK_TOKEN": secrets.token_hex(20),
        "AL_REDIS_PASSWORD": secrets.token_hex(20),
        "AL_POSTGRES_PASSWORD": secrets.token_hex(20),
    }


def main(argv: list[str] | None = None) -> int:
    path = Path(argv[0]) if argv else REPO / ".env"
    if path.exists():
        print(f"{path} exists; not overwriting it (delete it first to start over with new secrets)", file=sys.stderr)
        return 1
    path.write_text("".join(f"{k}={v}\n" for k, v in fresh_env().items()))
    path.chmod(0o600)
    print(f"wrote {path}: Label Studio login {fresh_env()['LABEL_STUDIO_USERNAME']}, password in the file")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
