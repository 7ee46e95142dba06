"""A logger's role wait whose run above ends on another thread as the listener is added.

``role_when_known`` finds the nearest run above that still holds a run's role back, then adds a
listener to it. Since a listener added to an ended run is refused (``ConfigError``), a run
above that ended between the two (its trials' search stopped on another thread) raised that
error out of the logger's call into the user's code. The role is read at once instead.
"""

from __future__ import annotations

import greenprint as gp
from greenprint.integrations._loggers import role_when_known


def test_a_run_above_ending_as_the_listener_is_added_tags_the_role_at_once(tmp_path):
    tagged: list[str] = []
    search = gp.track("search", study="s", ledger=tmp_path / "l.db")
    search.start()
    with gp.track("trial-0", study="s", ledger=tmp_path / "l.db", parent=search) as trial:
        trial.log(accuracy=0.9)
    add = search.add_listener

    def ended_first(listener):  # the search's thread ends it just before the listener lands
        search.stop()
        return add(listener)

    search.add_listener = ended_first
    assert role_when_known(trial, tagged.append) is False  # nothing left waiting
    assert tagged == ["trial"]  # read from the ledger now that the search has ended
