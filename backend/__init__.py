"""Active-learning ML backend for Label Studio: the HTTP service and the active-learning core."""

__version__ = "0.1.0"
