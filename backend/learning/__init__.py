"""Learning: features, models, the labeled set and model versions. No I/O beyond what callers pass in."""
