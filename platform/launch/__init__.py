"""Launching experiments on Ray: validate, run (grid or search), resume, status.

    driver.py       validate / launch / resume / status: what the ``dragsaw`` commands call
    run.py          grids on Ray Tune, the store opened for a run, LaunchError
    search_run.py   searches: studies driven by ask/tell under Tune
    trainable.py    one trial attempt on a worker: rows, checkpoints, retries
    preview.py      validate / --dry-run: the grid, its cost and what is missing, without the data
    interrupts.py, outcome.py, progress.py, status.py, checkpoints.py, packing.py
"""

from dragsaw.platform.launch.driver import launch, resume, validate
from dragsaw.platform.launch.run import LaunchError

# ``status`` is not re-exported: the submodule ``launch/status.py`` shares its name, and importing
# it rebinds the package attribute to the module. Use ``dragsaw.platform.launch.driver.status``.
__all__ = ["LaunchError", "validate", "launch", "resume"]
