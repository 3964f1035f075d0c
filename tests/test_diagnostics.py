"""Equivariance diagnostics of potentials, symmetry type by symmetry type."""

import numpy as np
from ase.calculators.emt import EMT

from ase_sbs.analysis.diagnostics import equivariance_error
from ase_sbs.cli import main

from .conftest import EXAMPLES


class LabFieldEMT(EMT):
    """EMT plus a force along a fixed lab direction: not rotation-equivariant."""

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        self.results["forces"] = self.results["forces"] + np.array([0.0, 0.0, 0.05])


def test_emt_is_equivariant_to_1e_10_for_every_symmetry_type(cu_bcc):
    atoms = cu_bcc.copy()
    atoms.rattle(0.05, seed=0)
    report = equivariance_error(EMT(), atoms, symprec=1e-4)
    assert len(report.rows) == 6
    for row in report.rows:
        assert row.energy_eV < 1e-10 and row.force_eV_A < 1e-10 and row.stress_eV_A3 < 1e-10, row
    symmetric = equivariance_error(EMT(), cu_bcc)
    assert symmetric.row("own group Oh").force_eV_A < 1e-10


def test_emt_alloy_supercell_is_equivariant_to_1e_10_for_every_symmetry_type(cu_bcc):
    atoms = cu_bcc.repeat((2, 2, 1))
    atoms.symbols[[0, 3]] = "Au"  # permutations and lattice translations now move distinct species
    atoms.rattle(0.05, seed=2)
    report = equivariance_error(EMT(), atoms, trials=2, symprec=1e-4)
    assert [r.kind for r in report.rows][:5] == ["proper rotation", "improper (inversion, mirror)", "permutation",
                                                 "translation", "lattice translation"]
    for row in report.rows:
        assert row.energy_eV < 1e-10 and row.force_eV_A < 1e-10 and row.stress_eV_A3 < 1e-10, row
    assert not report.flagged()


def test_a_lab_frame_force_is_flagged_for_rotations_only(cu_bcc):
    atoms = cu_bcc.copy()
    atoms.rattle(0.05, seed=1)
    report = equivariance_error(LabFieldEMT(), atoms, symprec=1e-4)
    assert set(report.flagged()) >= {"proper rotation", "improper (inversion, mirror)"}
    # the error is the field turned away from z, not round-off
    assert report.row("proper rotation").force_eV_A > 0.01
    for kind in ("permutation", "translation", "lattice translation"):
        assert kind not in report.flagged()
        assert report.row(kind).force_eV_A < 1e-10
    # at the symmetric structure the cubic group turns the field too
    assert "own group Oh" in equivariance_error(LabFieldEMT(), cu_bcc, trials=1).flagged()


def test_sevennet_reports_its_float32_noise(batio3):
    from ase_sbs.potentials import get_potential

    report = equivariance_error(get_potential("7net-0", ["Ba", "Ti", "O"]).calc, batio3, trials=2)
    assert 0 < report.noise < 1e-3  # float32 round-off, far below a 0.05 eV/Å seed
    assert report.row("permutation").force_eV_A < 1e-4


def test_check_potential_cli(capsys):
    assert main(["check-potential", str(EXAMPLES / "Cu_bcc.cif"), "--calc", "emt", "--trials", "2"]) == 0
    out = capsys.readouterr().out
    assert "proper rotation" in out and "own group Oh" in out and "FLAGGED" not in out
