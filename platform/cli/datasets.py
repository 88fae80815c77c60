"""``dragsaw datasets list | check | fetch``: the paper's datasets, where they come from,
getting them onto disk, and checking a dataset folder (``--read`` reads every file)."""

from __future__ import annotations

import argparse
import sys

from dragsaw.platform.cli._common import UsageError


def _list(args: argparse.Namespace) -> int:
    from dragsaw.platform.datasets.catalog import CatalogError, catalog
    from dragsaw.platform.datasets.fetch import expected_digest, status
    from dragsaw.workloads.data import DATASETS

    try:
        entries = catalog()
    except CatalogError as err:
        raise UsageError(str(err)) from None
    for name, (module, cls) in sorted(DATASETS.items()):
        dataset = entries.get(name)
        if dataset is None:
            print(f"{name:<14} your own folder (loader dragsaw.workloads.data.{module}.{cls}); nothing to fetch")
            continue
        how = "registration, then --from" if dataset.needs_registration else "download"
        print(f"{name:<14} {dataset.title}: {dataset.official}")
        print(f"  source:    {dataset.homepage} ({how})")
        for archive in dataset.archives:
            _, vouch = expected_digest(archive)
            digest = f"{archive.published[0]} {vouch}" if archive.published else vouch
            print(f"    {archive.filename}: {archive.url or 'after registration'}; checksum: {digest}")
        print(f"  size:      {dataset.size}")
        print(f"  licence:   {dataset.licence}")
        print(f"  status:    {status(dataset)}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from dragsaw.workloads.data import load_dataset

    options = {}
    for item in args.option or []:
        if "=" not in item:
            raise UsageError(f"--option must be key=value, but got {item!r}")
        key, value = item.split("=", 1)
        import yaml

        options[key] = yaml.safe_load(value)
    try:
        dataset = load_dataset(args.name, args.root, **options)
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None
    print(repr(dataset))
    lines = dataset.check(read=True) if args.read else dataset.check()
    for line in lines:
        print(f"  {line}")
    unreadable = [line for line in lines if line.startswith("unreadable")]
    if unreadable:
        print(f"dragsaw datasets check: {len(unreadable)} case(s) could not be read", file=sys.stderr)
        return 1
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from dragsaw.platform.datasets.catalog import CatalogError
    from dragsaw.platform.datasets.fetch import FetchError, FetchInputError, plan, run

    try:
        steps = plan(args.names, args.to, args.sources or [])
    except (FetchInputError, CatalogError) as err:
        raise UsageError(str(err)) from None
    try:
        return run(steps, downloads=args.downloads, keep_archives=args.keep_archives,
                   progress=not args.no_progress and sys.stderr.isatty())
    except FetchError as err:
        print(f"dragsaw datasets fetch: error: {err}", file=sys.stderr)
        return 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add this family's subcommands to the ``dragsaw`` parser."""
    p = sub.add_parser("datasets", help="the paper's datasets: list them, fetch them, check a dataset folder")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    ls = actions.add_parser("list", help="each dataset's source, size, licence, checksums and whether it is fetched")
    ls.set_defaults(func=_list)

    check = actions.add_parser("check", help="open a dataset folder with its loader and report what it found")
    check.add_argument("name", metavar="NAME", help="dataset loader name, e.g. isic2016 (see `dragsaw datasets list`)")
    check.add_argument("root", metavar="ROOT", help="the dataset's folder as extracted, e.g. data/ISIC2016")
    check.add_argument("--read", action="store_true",
                       help="also read every case (images and masks) and list the files that fail "
                            "(slow on full datasets); exit status 1 if any does")
    check.add_argument("--option", action="append", metavar="KEY=VALUE",
                       help="a loader option (YAML value), e.g. --option test_fraction=0.2; repeatable")
    check.set_defaults(func=_check)

    fetch = actions.add_parser(
        "fetch", help="download (or take --from), verify, unpack and place datasets where the paper specs look",
        description="Download each dataset's official archives (resumable, verified against published or "
                    "first-fetch checksums), unpack them into data/<folder> (the paper specs' roots) and run "
                    "the loader's check. Registration-only archives (PH2, DigestPath) are passed with --from.")
    fetch.add_argument("names", nargs="+", metavar="NAME", help="dataset(s) to fetch, e.g. isic2016 msd_heart")
    fetch.add_argument("--to", metavar="ROOT",
                       help="the dataset's root folder (default: data/<folder>, as in the paper specs; "
                            "one NAME only)")
    fetch.add_argument("--from", dest="sources", action="append", metavar="ARCHIVE",
                       help="an archive you downloaded yourself (registration-only datasets, or to skip a "
                            "download); verified, then unpacked; repeatable")
    fetch.add_argument("--downloads", metavar="DIR",
                       help="where downloads (and unfinished .part files, resumed next time) are kept until "
                            "placed (default: $DRAGSAW_CACHE/downloads)")
    fetch.add_argument("--keep-archives", action="store_true",
                       help="keep the downloaded archives after placing them (default: delete them)")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bars (they show only on a terminal)")
    fetch.set_defaults(func=_fetch)
