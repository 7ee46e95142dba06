"""The figures' data, computed from the runs with :mod:`greenprint.analysis`.

Each builder returns a :class:`~greenprint.report._model.Figure` (numbers only; plotting is in
``_plots.py``) or ``None`` with the reason, which the report shows instead of the figure. One
module per figure family, re-exported here:

* :mod:`._figure_inputs`: what they share (:class:`FigureInputs`, the trials' columns, the
  display units, the baselines' reference lines);
* :mod:`._figure_evp`: the expected max performance, against trials and energy, by family;
* :mod:`._figure_pareto`: score against energy, with the front;
* :mod:`._figure_learning`: the learning curve;
* :mod:`._figure_timeline`: power and cumulative energy over time.
"""

from __future__ import annotations

from greenprint.report._figure_evp import evp_figures, family_hint
from greenprint.report._figure_inputs import FigureInputs, energy_unit
from greenprint.report._figure_learning import learning_curve_figure
from greenprint.report._figure_pareto import pareto_figure
from greenprint.report._figure_timeline import _mean_power_rows as _mean_power_rows
from greenprint.report._figure_timeline import _unique_times as _unique_times
from greenprint.report._figure_timeline import timeline_figure

__all__ = [
    "FigureInputs",
    "energy_unit",
    "evp_figures",
    "family_hint",
    "learning_curve_figure",
    "pareto_figure",
    "timeline_figure",
]
