"""Run queued jobs in this process, as the tests and scripts do between HTTP calls.

RQ's ``SimpleWorker`` subscribes to a Redis channel for commands (stop a
job, shut down) in a thread; ``work(burst=True)`` then ends by stopping that
thread, which with redis-py 8 waits for the thread's blocking read (up to
its 60 s ``sleep_time``) and has been seen to hang for good (rq/rq#1613).
A burst in a test gets no commands, so :class:`BurstWorker` does not
subscribe: the same job execution, without the thread.
"""

from __future__ import annotations

from redis import Redis
from rq import Queue, SimpleWorker

from backend.state.queueing import JOB_SERIALIZER


class BurstWorker(SimpleWorker):
    """A ``SimpleWorker`` without the command channel (nothing sends it commands)."""

    def subscribe(self) -> None:
        return None

    def unsubscribe(self) -> None:
        return None


def run_burst(queues: list[Queue], connection: Redis) -> None:
    """Run every job queued on ``queues`` (the first first) in this process, then return."""
    BurstWorker(queues, connection=connection, serializer=JOB_SERIALIZER).work(burst=True)
