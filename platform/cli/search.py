"""``dragsaw best``: the best samples of a search, and the grid spec that confirms them;
``dragsaw dashboard``: optuna-dashboard on a search's study, wherever it lives."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from dragsaw.platform.cli._common import UsageError, store_parent, store_url

if TYPE_CHECKING:
    from optuna.storages import BaseStorage


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _table(samples) -> str:
    if not samples:
        return "no samples yet"
    lines = []
    for s in samples:
        value = "-" if s.value is None else (", ".join(f"{v:.4f}" for v in s.values) if s.values and len(s.values) > 1
                                             else f"{s.value:.4f}")
        params = " ".join(f"{k}={json.dumps(v)}" for k, v in s.params.items())
        lines.append(f"{s.trial_id:<28} #{s.number:<4} {s.state:<8} {value:<16} {params}")
    header = f"{'sample':<28} {'#':<5} {'state':<8} {'value':<16} params"
    return "\n".join([header, "-" * len(header)] + lines)


def _best(args: argparse.Namespace) -> int:
    import yaml

    from dragsaw.platform.launch.run import absolute
    from dragsaw.platform.search.best import best_samples, confirmation_grid

    url = absolute(store_url(args))
    spec, specs, samples = best_samples(url, args.name, args.top)
    if args.format == "json":
        print(json.dumps([s.as_json() for s in samples], indent=1, default=str))
    else:
        print(_table(samples))
    if args.export:
        grid = confirmation_grid(spec, specs, samples)
        if len(grid["variants"]) < 2:
            raise UsageError(f"no finished sample of {args.name!r} to export yet (pruned and failed samples are "
                             "not confirmed)")
        text = (f"# dragsaw run {args.export}\n# The best {args.top} samples of the search {args.name!r} "
                f"(dragsaw best {args.name} --top {args.top}) against a baseline, 3 seeds, test folds.\n")
        text += yaml.safe_dump(grid, sort_keys=False)
        with open(args.export, "w") as handle:
            handle.write(text)
        print(f"wrote {args.export}: {len(grid['variants']) - 1} configurations and a baseline; "
              f"check it with: dragsaw validate {args.export}", file=sys.stderr if args.format == "json" else None)
    return 0


def dashboard_storage(url: str, name: str, scratch: str) -> tuple[BaseStorage, str]:
    """(storage optuna-dashboard serves, where the study lives) for the search ``name`` in the
    store ``url``: a database URL (``search.storage``) or a local journal as they are; a
    journal in an object store is first copied into a local journal under ``scratch`` (a
    read-only snapshot: nothing is written back). UsageError for a grid or an unknown name."""
    from dragsaw.platform.launch.run import LaunchError, load_record
    from dragsaw.platform.search.storage import study_storage

    try:
        record = load_record(url, name)
    except LaunchError as err:
        raise UsageError(str(err)) from None
    search = (record.get("spec") or {}).get("search")
    if not search:
        raise UsageError(f"experiment {name!r} in {url} is a grid, not a search: it has no Optuna study")
    try:
        storage, where = study_storage(search.get("storage"), url, name)
    except ValueError as err:
        raise UsageError(str(err)) from None
    from optuna.storages import JournalStorage

    backend = getattr(storage, "_backend", None)
    if isinstance(storage, JournalStorage) and backend is not None and type(backend).__name__ == "ObjectJournalBackend":
        from optuna.storages.journal import JournalFileBackend

        local = JournalFileBackend(f"{scratch}/study.journal")
        logs = list(backend.read_logs(0))
        if logs:
            local.append_logs(logs)
        return JournalStorage(local), f"{where} (a snapshot: {len(logs)} journal records)"
    return storage, where


def _dashboard(args: argparse.Namespace) -> int:
    import signal
    import tempfile

    from dragsaw.platform.launch.run import absolute

    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise UsageError("optuna-dashboard is not installed: pip install 'dragsaw[dashboard]'") from None
    url = absolute(store_url(args))
    with tempfile.TemporaryDirectory(prefix="dragsaw-dashboard-") as scratch:
        storage, where = dashboard_storage(url, args.name, scratch)
        print(f"optuna-dashboard for {args.name} (study in {where}) at http://127.0.0.1:{args.port}/ "
              "(Ctrl-C stops)", flush=True)
        def stop(signum, frame):  # SIGTERM as Ctrl-C: the snapshot is removed on the way out
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, stop)
        try:
            run_server(storage, host="127.0.0.1", port=args.port)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 1-65535, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``best`` and ``dashboard`` to the ``dragsaw`` subcommands."""
    d = sub.add_parser("dashboard", parents=[store_parent()],
                       help="serve optuna-dashboard on 127.0.0.1 for a search's study (optional extra: "
                            "pip install 'dragsaw[dashboard]')",
                       description="Serves optuna-dashboard for the Optuna study of the search NAME wherever it "
                                   "lives: the journal in a local store (live), a database (search.storage), or "
                                   "the journal in an s3:// store (read into a local snapshot first). Listens on "
                                   "127.0.0.1 only; Ctrl-C stops it.")
    d.add_argument("name", metavar="NAME", help="the search experiment's name (as `dragsaw status` lists it)")
    d.add_argument("--port", type=_port, default=8080, metavar="P", help="the port to listen on (default: 8080)")
    d.set_defaults(func=_dashboard)
    p = sub.add_parser("best", parents=[store_parent()],
                       help="the best samples of a search (value, state, parameters); --export a grid that confirms "
                            "them",
                       description="Ranks each study's samples as Optuna does: finished (COMPLETE) by their final "
                                   "value (several objectives: the Pareto front first), then PRUNED by the last value "
                                   "they reported, then FAIL. The study is read from wherever it lives (the store's "
                                   "journal or the spec's search.storage).")
    p.add_argument("name", metavar="NAME", help="the search experiment's name (as `dragsaw status` lists it)")
    p.add_argument("--top", type=_positive, default=5, metavar="K", help="samples per study to show (default: 5)")
    p.add_argument("--format", "-f", choices=("table", "json"), default="table",
                   help="table (default) or json: a list of {trial_id, number, state, value, params, ...}")
    p.add_argument("--export", "--write", metavar="FILE", default=None,
                   help="write a grid spec YAML: the top K finished samples as variants named by their ids, a "
                        "baseline without plug-ins, the search's datasets on their test fold, 3 seeds")
    p.set_defaults(func=_best)


__all__ = ["register"]
