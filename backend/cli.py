"""``al-backend``: the one command behind the backend and the worker."""

from __future__ import annotations

import argparse
import atexit
import ipaddress
import logging
import logging.config
import os
import pathlib
import re
import shutil
import sys
import tempfile

from pydantic import ValidationError
from pydantic_settings import SettingsError

from backend.settings import Settings, env_name, get_settings

#: One format for every process (serving processes, workers, the CLI): time, level, logger, pid.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def log_config(level: str) -> dict:
    """A ``logging.config.dictConfig`` dict: the root logger writes ``LOG_FORMAT`` to stderr.

    uvicorn applies it in *each* serving process it spawns (``log_config``),
    so WARNING lines of every process reach the console; configuring only
    the parent process (``basicConfig``) loses them in the children.
    uvicorn's own loggers propagate to the root, in the same format.
    """
    lvl = level.upper() if level.upper() in logging.getLevelNamesMapping() else "INFO"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"format": LOG_FORMAT}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}},
        "root": {"level": lvl, "handlers": ["stderr"]},
        "loggers": {
            **{name: {"handlers": [], "propagate": True, "level": lvl}
               for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
            # httpx logs every request's full URL at INFO: a task's presigned link (a signature in its
            # query string) must not reach the logs; fetch.py logs host and path only, at DEBUG.
            "httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"},
        },
    }


def _logging(level: str) -> None:
    logging.config.dictConfig(log_config(level))


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the backend reachable from this machine only."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume others can reach it


def bind_refusal(host: str, settings: Settings) -> str | None:
    """Why ``serve`` must not start on ``host`` with these settings, or ``None``.

    Safe by default: with no basic auth, anyone who reaches the port can
    rewrite projects, forge labels and trigger fetches, so only loopback is
    served unless ``AL_ALLOW_INSECURE=1`` says the network is trusted.
    """
    if is_loopback(host) or settings.auth_enabled or settings.allow_insecure:
        return None
    return (f"refusing to serve {host} without authentication: set BASIC_AUTH_USER and BASIC_AUTH_PASS "
            "(and the same user/password in Label Studio's model settings), or bind 127.0.0.1, "
            "or set AL_ALLOW_INSECURE=1 if every host that can reach this port is trusted")


def serve(args: argparse.Namespace) -> int:
    """Run the HTTP backend with several processes (CPU-bound predictions scale by process)."""
    import uvicorn

    refusal = bind_refusal(args.host, get_settings())
    if refusal:
        print(f"al-backend serve: {refusal}", file=sys.stderr)
        return 2

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
        "backend.service.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,  # our middleware logs paths without query strings (tokens)
        log_config=log_config(settings.log_level),
        timeout_graceful_shutdown=5,
    )
    return 0


def worker(args: argparse.Namespace) -> int:
    from worker.main import run

    run(burst=args.burst)
    return 0


#: ``--quick``, per protocol: small enough for CI (well under a minute), large enough to exercise every step.
QUICK = {"loop": {"seeds": 3, "budget": 150, "batch_size": 5, "initial": 0, "max_rows": 3000},
         "batch": {"seeds": 3, "budget": 300, "batch_size": 50, "initial": 50, "max_rows": 3000}}


def simulate(args: argparse.Namespace) -> int:
    """Replay the annotation loop on a labeled dataset and compare strategies with random."""
    import time

    from backend.learning import auto_features, featurizers
    from backend.selection import strategies
    from backend.simulation.replay import PROTOCOLS, Protocol, SimulationError, load_source
    from backend.simulation.replay import simulate as run
    from backend.simulation.report import (
        format_feature_comparison,
        format_table,
        plot_curves,
        summarise,
        write_results,
    )

    preset = {**PROTOCOLS[args.protocol], "max_rows": 0, **(QUICK[args.protocol] if args.quick else {})}
    opts = {k: v if getattr(args, k, None) is None else getattr(args, k) for k, v in preset.items()}
    if args.strategies is None:
        names = ["random", strategies.DEFAULT_STRATEGY]
    elif args.strategies.strip() == "all":
        names = sorted(strategies.STRATEGIES, key=lambda n: (n != "random", n))
    else:
        names = [n.strip() for n in args.strategies.split(",") if n.strip()]
        if "random" not in names:
            names.insert(0, "random")  # the baseline is always measured
    features = [f.strip() for f in args.features.split(",") if f.strip()] or [featurizers.KIND_DEFAULT]
    try:
        for name in features:
            if name != auto_features.AUTO:
                featurizers.check(name)
        protocol = Protocol(
            strategies=tuple(names), seed=args.seed, test_size=args.test_size,
            control_share=strategies.DEFAULT_CONTROL_SHARE if args.control_share is None else args.control_share,
            **{**opts, "class_weight": None if opts["class_weight"] == "none" else opts["class_weight"]},
        )
        dataset = load_source(args.source, text_column=args.text_column, label_column=args.label_column,
                              label_config=args.label_config, encoding=args.encoding, image_column=args.image_column,
                              number_column=args.number_column, target_column=args.target_column)
    except (SimulationError, featurizers.FeaturizerError) as exc:
        print(f"al-backend simulate: error: {exc}", file=sys.stderr)
        return 2
    base = pathlib.Path(args.out or f"simulation-{pathlib.Path(dataset.name).stem}")
    summaries, feature_seconds = {}, {}
    for name in features:
        try:
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            result = run(dataset, protocol, jobs=args.jobs, time_limit=args.time_limit,
                         progress=False if args.no_progress else None, features=name)
        except (SimulationError, RuntimeError) as exc:
            print(f"al-backend simulate: error: {exc}", file=sys.stderr)
            return 2
        summary = summarise(result)
        out = base if len(features) == 1 else base / name
        timing = {
            "started": started,
            "seconds": round(result.seconds, 2),
            "feature_seconds": round(result.feature_seconds, 2),
            "jobs": args.jobs,
            "seconds_per_run": {
                s: round(float(sum(r.curves[s].seconds for r in result.repetitions) / len(result.repetitions)), 3)
                for s in protocol.strategies
            },
        }
        path = write_results(summary, timing, out)
        png = plot_curves(summary, out / "learning-curves.png")
        if len(features) > 1:
            print(f"\n## features: {name}\n")
        print(format_table(summary))
        print(f"\n{result.seconds:.1f} s; wrote {path} and {png}")
        summaries[name], feature_seconds[name] = summary, result.feature_seconds
    if len(features) > 1:
        print("\n## features compared (same splits and initial sets)\n")
        print(format_feature_comparison(summaries, feature_seconds))
    return 0


def _simulate_parser(sub) -> None:
    from backend.simulation.datasets import BUILTIN, REGRESSION
    from backend.simulation.replay import LOOP, PROTOCOLS

    s = sub.add_parser(
        "simulate",
        help="measure label efficiency offline: replay the annotation loop on labeled data, against random",
        description="Replay the worker's loop (features, model, strategy, batch, retraining) on a labeled "
                    "dataset and compare strategies with random, paired over seeds. Writes results.json and "
                    "learning-curves.png to --out and prints the table.",
    )
    s.add_argument("source", help=f"a built-in dataset ({', '.join(BUILTIN)}; with a number to predict: "
                                  f"{', '.join(REGRESSION)}), a CSV/JSONL file, or a Label Studio JSON export (.json) "
                                  "of a <Choices>, <Number> or <Rating> project")
    s.add_argument("--text-column", help="CSV/JSONL: the text column; export: the task data field (guessed if one)")
    s.add_argument("--image-column", help="CSV/JSONL: the column of image paths (relative to the file), file://, "
                                          "http(s) or data: links, instead of --text-column")
    s.add_argument("--number-column", help="CSV/JSONL: the column of records of numbers (a list or an object, "
                                           "JSON text in a CSV), instead of --text-column")
    s.add_argument("--label-column", help="CSV/JSONL: the label column; export: the <Choices>, <Number> or <Rating> "
                                          "name (guessed if one)")
    s.add_argument("--target-column", help="CSV/JSONL: a column of numbers to predict (as a <Number> or <Rating> "
                                           "is answered), instead of --label-column: the model is the worker's "
                                           "committee regressor, scored by its error")
    s.add_argument("--label-config", help="export only: the project's label config XML, to read texts as the worker does")
    s.add_argument("--encoding", help="the file's text encoding, e.g. cp1252 or latin-1 "
                                      "(default: the byte-order mark's, else UTF-8)")
    s.add_argument("--strategies", help="comma-separated names ('random' is always added), or 'all'; "
                                        "default: random and the production default")
    s.add_argument("--features", default="default",
                   help="comma-separated featurizers to compare (texts: ngrams, embeddings, concat; images: "
                        "efficientnet, hog; records: numbers; or auto: chosen by cross-validation as labels "
                        "arrive, as a project with features 'auto'); one run each, written to --out/<name> when "
                        "several (default: 'default', the project default for the data: ngrams for texts, "
                        "efficientnet for images, numbers for records)")
    s.add_argument("--protocol", choices=sorted(PROTOCOLS), default="loop",
                   help="loop (default): a retraining after every label, warm-started, from the cold-start "
                        "ranking, as the worker runs; batch: batches of 100 from 100 random labels, the "
                        "protocol of the earlier runs. The flags below override either")
    s.add_argument("--seeds", type=int, help=f"repetitions (default {LOOP['seeds']})")
    s.add_argument("--seed", type=int, default=0, help="the one seed every random choice derives from (default 0)")
    s.add_argument("--budget", type=int, help=f"labels per run, initial set included (default {LOOP['budget']})")
    s.add_argument("--batch-size", type=int, help="labels per round, one retraining each (loop 1, batch 100)")
    s.add_argument("--class-weight", choices=["balanced", "none"],
                   help="the model's class weights: 'balanced' weighs each label inversely to its frequency "
                        "(loop: balanced, as the worker; batch: none, as the earlier runs)")
    s.add_argument("--batch-growth", type=float,
                   help="a round takes max(batch size, this share of the labels so far): e.g. 0.02 for long "
                        "runs, as the worker coalesces the labels saved during a longer refresh (default 0)")
    s.add_argument("--initial", type=int, help="random initial labels; 0: the cold-start ranking's (loop 0, batch 100)")
    s.add_argument("--test-size", type=float, default=0.2, help="held-out share, never queried (default 0.2)")
    s.add_argument("--control-share", type=float, default=None,
                   help="random share of each batch, as in production (default: the production default)")
    s.add_argument("--max-rows", type=int, help="use a stratified subsample of this many rows (default: all)")
    s.add_argument("--jobs", type=int, default=1, help="processes, one repetition each (results do not depend on it)")
    s.add_argument("--time-limit", type=float, help="seconds; unfinished repetitions are dropped")
    s.add_argument("--out", help="folder for results.json and learning-curves.png (default: simulation-<dataset>)")
    s.add_argument("--quick", action="store_true",
                   help="small preset for CI: " + "; ".join(
                       f"{name}: " + ", ".join(f"{k}={v}" for k, v in q.items()) for name, q in QUICK.items()))
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=simulate)


def _config_error(error: dict) -> str:
    """One setting's problem, naming its variable (never its value, which may be a secret)."""
    msg = str(error.get("msg", "")).removeprefix("Value error, ")
    loc = error.get("loc") or ()
    return f"{loc[0]}: {msg}" if loc else msg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="al-backend", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the ML backend Label Studio connects to")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; other addresses need basic auth or AL_ALLOW_INSECURE=1)")
    p.add_argument("--port", type=int, default=9090)
    p.add_argument("--workers", type=int, default=int(os.environ.get("AL_WORKERS", "2")),
                   help="serving processes (default: AL_WORKERS or 2)")
    p.set_defaults(func=serve)
    w = sub.add_parser("worker", help="run an RQ worker that trains and ranks")
    w.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    w.set_defaults(func=worker)
    _simulate_parser(sub)
    args = parser.parse_args(argv)
    try:
        get_settings()
    except ValidationError as exc:  # the message only: pydantic's text would echo secret inputs
        reasons = "; ".join(_config_error(e) for e in exc.errors())
        print(f"al-backend: configuration error: {reasons}", file=sys.stderr)
        return 2
    except SettingsError as exc:  # a value that is not even parseable (AL_WEIGHTS that is not JSON)
        field = re.search(r'field "(\w+)"', str(exc))
        name = env_name(field.group(1)) if field and field.group(1) in Settings.model_fields else "a setting"
        print(f"al-backend: configuration error: {name}: cannot be parsed (expected JSON)", file=sys.stderr)
        return 2
    _logging(get_settings().log_level)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
