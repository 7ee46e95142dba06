"""A RAPL DRAM zone that permissions alone keep from being read carries its fix (session 52).

The package counter readable, the DRAM zone's ``energy_uj`` root-only: RAPL is usable for the
CPU and RAM is estimated; the chmod that would let greenprint read RAM's counter was in the
runs' provenance but not in ``greenprint hardware``, which prints each meter's fix: its rapl
row said "dram unreadable (permission denied ...)" with no fix under it.
"""

from __future__ import annotations

from greenprint.meters import probe_rapl
from greenprint.testing import make_fake_rapl


def test_the_usable_rapl_status_carries_the_dram_chmod(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc", unreadable=["dram-0"])
    probe = probe_rapl(rapl.root, opener=rapl.opener)
    assert probe.status.usable and probe.package and probe.dram == ()
    assert "dram unreadable (permission denied" in probe.status.reason
    assert probe.status.fix == f"sudo chmod a+r {rapl.root}/intel-rapl:*/energy_uj (or run as root)"


def test_a_readable_tree_has_no_fix(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc")
    probe = probe_rapl(rapl.root, opener=rapl.opener)
    assert probe.status.usable and probe.dram and probe.status.fix is None
