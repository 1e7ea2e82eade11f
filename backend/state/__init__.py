"""State kept in Redis: the project store, the worker queues, job status and the pushed head."""
