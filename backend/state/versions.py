"""Load a published model version from Redis (the arrays are unpacked by ``backend/learning/versions.py``)."""

from __future__ import annotations

from backend.learning.versions import LoadedVersion, unpack_version
from backend.state.store import ProjectStore


def load_version(store: ProjectStore, name: str) -> LoadedVersion | None:
    """Load a published version; ``None`` if it is not (or no longer) stored."""
    meta = store.version_meta(name)
    if meta is None:
        return None
    return unpack_version(name, meta, store.artifacts(name))
