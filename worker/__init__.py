"""The RQ worker: job functions that sync, train, rank and publish model versions."""
