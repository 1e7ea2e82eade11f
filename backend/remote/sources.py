"""Where a project's predictions come from when its model is not this backend's own.

The one place that knows the two kinds (``model`` in *Extra params*): another
ML backend over HTTP (``remote``), or a class run in this process
(``plugin``).  Both answer ``predict(tasks, *, project, label_config)``, so
the worker and ``/predict`` call either the same way.
"""

from __future__ import annotations

from typing import Any

from backend.remote import plugin
from backend.remote.client import RemoteModel

__all__ = ["OTHER_MODELS", "uses_other_model", "prediction_source"]

#: ``model`` values whose predictions come from elsewhere (``own``: this backend trains its models).
OTHER_MODELS = ("remote", "plugin")


def uses_other_model(extra_params: Any) -> bool:
    """Whether a project's stored *Extra params* name a remote backend or a plug-in as its model."""
    return isinstance(extra_params, dict) and extra_params.get("model") in OTHER_MODELS


def prediction_source(options: Any, *, project: str, label_config: str) -> RemoteModel | plugin.PluginModel:
    """The remote backend, or this process's instance of the plug-in class (made on first use; not fit here).

    ``options``: the project's ``ProjectOptions``.  Raises ``RemoteError``
    when a plug-in cannot be imported or made.
    """
    if options.model == "plugin":
        return plugin.load(options.plugin, project=project, label_config=label_config)
    return RemoteModel(options.remote_url, timeout=options.remote_timeout)
