"""``al-backend``: the one command behind the backend and the worker."""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import shutil
import sys
import tempfile

from backend.config import get_settings


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )


def serve(args: argparse.Namespace) -> int:
    """Run the HTTP backend with several processes (CPU-bound predictions scale by process)."""
    import uvicorn

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Metrics of all serving processes are merged from files in this folder.
        path = tempfile.mkdtemp(prefix="al-backend-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        atexit.register(shutil.rmtree, path, True)
    else:
        path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)
    settings = get_settings()
    uvicorn.run(
        "backend.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,  # our middleware logs paths without query strings (tokens)
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
    )
    return 0


def worker(args: argparse.Namespace) -> int:
    from worker.main import run

    run(burst=args.burst)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="al-backend", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the ML backend Label Studio connects to")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=9090)
    p.add_argument("--workers", type=int, default=int(os.environ.get("AL_WORKERS", "2")),
                   help="serving processes (default: AL_WORKERS or 2)")
    p.set_defaults(func=serve)
    w = sub.add_parser("worker", help="run an RQ worker that trains and ranks")
    w.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    w.set_defaults(func=worker)
    args = parser.parse_args(argv)
    _logging(get_settings().log_level)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
