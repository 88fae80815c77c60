"""Package layout: ``dragsaw/`` is a regular package whose ``platform`` and ``workloads``
are symbolic links to the top-level folders of the same names (the project's specified
layout). A folder path on disk spells each import path, so static tools (IDEs, jedi,
pyright) resolve ``dragsaw.platform.cli`` to ``platform/cli.py`` without running any
import hook; setuptools follows the links when it builds a wheel.

``platform/`` must never hold an ``__init__.py``: with one, the folder would shadow the
standard library's ``platform`` module for anything run from the repository root
(pytest, scripts, Ray workers). Sub-packages are discovered with
``find_namespace_packages`` so that a new sub-folder is never silently left out of the
wheel.
"""

from setuptools import find_namespace_packages, setup

packages = [p for p in find_namespace_packages(include=["dragsaw", "dragsaw.*"]) if "__pycache__" not in p]

setup(packages=packages, include_package_data=False)
