"""greenprint inside the frameworks studies already run in, one module per framework.

Each module needs its framework, installed with its extra; importing one whose framework is
missing raises :class:`~greenprint.MissingDependencyError` (an ``ImportError``) naming the extra.
``import greenprint`` and ``import greenprint.integrations`` import none of them.

* :mod:`greenprint.integrations.optuna` (``pip install 'greenprint[optuna]'``):
  ``GreenprintCallback``: ``study.optimize(cb.track(objective), callbacks=[cb])`` records every
  trial (finished, pruned, failed) as a run with role ``trial``.
* :mod:`greenprint.integrations.sklearn` (``pip install 'greenprint[sklearn]'``):
  ``track_search(search, X, y)`` prices every fit of ``GridSearchCV``, ``RandomizedSearchCV``
  and the halving searches, joblib worker processes included: candidates as trials, folds as
  parts, the refit as the final run.
* :mod:`greenprint.integrations.notebook` (``pip install 'greenprint[notebook]'``): the
  ``%greenprint`` / ``%%greenprint`` IPython magics
  (``%load_ext greenprint.integrations.notebook``); runs, price tags and reports display as
  HTML in notebooks without it.
* :mod:`greenprint.integrations.lightning` (``pip install 'greenprint[lightning]'``):
  ``GreenprintCallback`` for ``lightning.Trainer``.
* :mod:`greenprint.integrations.ray` (``pip install 'greenprint[ray]'``): ``trainable(fn)``
  measures each Ray Tune trial in its worker, ``GreenprintTuneCallback`` records the experiment
  as a sweep of those trials (finished, pruned, failed).

See ``docs/integrations.md`` for each one's example.
"""
