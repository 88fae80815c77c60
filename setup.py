"""Package layout: ``dragsaw`` is an implicit namespace whose two halves live in
top-level folders (``platform/`` -> ``dragsaw.platform``, ``workloads/`` ->
``dragsaw.workloads``).

``platform/`` must never hold an ``__init__.py``: with one, the folder would
shadow the standard library's ``platform`` module for anything run from the
repository root (pytest, scripts, Ray workers). Sub-packages are discovered
with ``find_namespace_packages`` so that a new sub-folder is never silently
left out of the wheel.
"""

from setuptools import find_namespace_packages, setup


def _packages(folder: str, prefix: str) -> tuple[list[str], dict[str, str]]:
    found = find_namespace_packages(where=".", include=[folder, f"{folder}.*"])
    found = [p for p in found if "__pycache__" not in p]
    names = [p.replace(folder, prefix, 1) for p in found]
    dirs = {name: p.replace(".", "/") for name, p in zip(names, found)}
    return names, dirs


_platform, _platform_dirs = _packages("platform", "dragsaw.platform")
_workloads, _workloads_dirs = _packages("workloads", "dragsaw.workloads")

setup(
    packages=_platform + _workloads,
    package_dir={**_platform_dirs, **_workloads_dirs},
    include_package_data=False,
)
