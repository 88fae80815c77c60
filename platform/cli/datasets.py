"""``dragsaw datasets list | check``: the dataset loaders and extracted datasets on disk."""

from __future__ import annotations

import argparse

from dragsaw.platform.cli._common import UsageError


def _datasets(args: argparse.Namespace) -> int:
    from dragsaw.workloads.data import DATASETS, load_dataset

    if args.action == "list":
        for name, (module, cls) in sorted(DATASETS.items()):
            print(f"{name:<14} dragsaw.workloads.data.{module}.{cls}")
        return 0
    if not args.name or not args.root:
        raise UsageError("usage: dragsaw datasets check NAME ROOT [--option key=value ...]")
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
    for line in dataset.check():
        print(f"  {line}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this family's subcommands to the ``dragsaw`` parser."""
    p = sub.add_parser("datasets", help="list the dataset loaders, or check an extracted dataset")
    p.add_argument("action", choices=["list", "check"], help="list the loaders, or check one dataset folder")
    p.add_argument("name", nargs="?", metavar="NAME", help="dataset loader name (check), e.g. isic2016")
    p.add_argument("root", nargs="?", metavar="ROOT", help="the dataset's folder as extracted (check)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a loader option (YAML value), e.g. --option test_fraction=0.2; repeatable")
    p.set_defaults(func=_datasets)
