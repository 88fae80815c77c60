"""Searches: the search-space language of specs and its Optuna plumbing, in one place.

    space.py          SearchSpace: parameters, distributions, conditions, applying a sample
    distributions.py  float / int / categorical / subset distributions as written in YAML
    conditions.py     ``when`` conditions (a small safe subset of Python expressions)
    schema.py         the ``search:`` section of a spec (sampler, scheduler, objective)
    probe.py          checking a space against the base config before anything runs
    study.py          a search spec as studies (one per dataset), samples as trials; opening one
    samplers.py       Optuna samplers by name
    storage.py        where studies persist

Import from the modules themselves (``from dragsaw.platform.search.space import
SearchSpace``): this package re-exports nothing, so that the experiment schema can use the
language without importing Optuna or the launcher.
"""
