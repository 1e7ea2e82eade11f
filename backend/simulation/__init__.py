"""Offline replay of the annotation loop on labeled datasets (``al-backend simulate``)."""
