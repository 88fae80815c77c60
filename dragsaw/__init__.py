"""dragsaw: medical-image segmentation research with PDCR and UAFR at cluster scale.

The two halves live in the repository's top-level folders and are reached through this
package's symbolic links, so that a folder path on disk spells every import path (what IDEs,
jedi and pyright need):

    dragsaw/platform  -> ../platform    orchestration: specs, Ray Tune, Optuna, the store, the CLI
    dragsaw/workloads -> ../workloads   the science: PDCR, UAFR, models, data, one trial, metrics

``platform/`` has no ``__init__.py`` on purpose (it is a namespace package inside this
one): from the repository root, ``import platform`` must keep giving the standard library.
"""

__version__ = "0.1.0"
