"""The instability scan against phonopy on the same potential (SevenNet-0), cubic SrTiO3
and BaTiO3 with their lattice constant relaxed within Pm-3m.

phonopy's force constants come from the 4×4×4 supercell (every k of the scan's grid is
commensurate with it, so its dynamical matrix there is exact), with ± displacements of
0.005 and 0.01 Å extrapolated to zero step (λ₀ = (4 λ(h/2) − λ(h)) / 3: a single displaced
atom of a soft mode feels the quartic term, 6 % at M of SrTiO3 at 0.01 Å). With unit
masses phonopy's eigenvalues are those of C(q) = Σ_n Φ(0, n) e^{2πiq·n} in eV/Å², the
scan's curvatures; with the real masses its frequencies are the scan's mass-weighted ones.
The scan runs as shipped (one 0.01 Å step, one symmetry-reduced Hessian per star) and at
0.005 Å, extrapolated the same way. Checked: the unstable stars are phonopy's unstable
q-points of the grid, and at each of them the lowest curvature and the lowest frequency
agree within 5 %.
"""

import json

import numpy as np
import pytest
from ase.io import read

from ase_sbs.analysis.scan import relax_in_group, scan_structure
from ase_sbs.potentials import get_potential
from ase_sbs.setting.scan import THZ, UNSTABLE, StarIndex, grid_kpoints, scan_parent

from ..conftest import EXAMPLES
from .plain_ase import phonopy_with_force_constants

pytestmark = pytest.mark.slow
pytest.importorskip("phonopy")

GRID = 4


def phonopy_eigenvalues(atoms, calc, qpoints) -> tuple[np.ndarray, np.ndarray]:
    """(q, bands) eigenvalues at ``qpoints`` from the GRID×GRID×GRID force constants,
    extrapolated to zero step: with unit masses (eV/Å²) and with the real ones (eV/(Å² amu)),
    from one set of displaced supercells."""
    values = {}
    for h in (0.005, 0.01):
        ph = phonopy_with_force_constants(atoms, calc, np.eye(3, dtype=int) * GRID, h)
        out = []
        for unit_m in (True, False):
            ph.masses = np.ones(len(atoms)) if unit_m else atoms.get_masses()
            ph.run_qpoints(qpoints)
            nu = ph.get_qpoints_dict()["frequencies"]
            out.append(np.sort(np.sign(nu) * (nu / THZ) ** 2, axis=1))
        values[h] = out
    unit, real = ((4 * values[0.005][i] - values[0.01][i]) / 3 for i in range(2))
    return unit, real


@pytest.fixture(scope="module")
def potential():
    return get_potential("7net-0", ["Sr", "Ba", "Ti", "O"])


@pytest.fixture(scope="module", params=["SrTiO3", "BaTiO3"])
def comparison(request, potential):
    atoms = relax_in_group(read(EXAMPLES / f"{request.param}_cubic.cif"), potential)
    result = scan_structure(atoms, potential, None, GRID, path=False)  # as shipped: one step of 0.01 Å
    half = scan_structure(atoms, potential, None, GRID, path=False, step=0.005)
    qs = grid_kpoints(GRID)
    curv, freq2 = phonopy_eigenvalues(atoms, potential.calc, qs)
    index = StarIndex(scan_parent(atoms))
    for s in result.stars:
        index.add(np.array(s.kpoint))
    rows = {}
    for q, lam, w2 in zip(qs, curv, freq2):
        star = result.stars[index.find(q)]
        if star.name == "Γ":  # the three acoustic modes are no distortion
            lam, w2 = lam[np.argsort(np.abs(lam))[3:]], w2[np.argsort(np.abs(w2))[3:]]
        low, nu = rows.get(star.name, (np.inf, np.inf))
        rows[star.name] = (min(low, lam.min()), min(nu, THZ * np.sign(w2.min()) * np.sqrt(abs(w2.min()))))
    table = []
    for s, s2 in zip(result.stars, half.stars):
        low = [min(c.lowest for c in star.channels if "strain" not in c.sources) for star in (s, s2)]
        nu = [min(c.frequencies_THz[0] for c in star.channels if "strain" not in c.sources) for star in (s, s2)]
        nu2 = [np.sign(v) * v ** 2 for v in nu]
        nu0 = (4 * nu2[1] - nu2[0]) / 3
        table.append({"star": s.name, "scan_eV_A2": low[0], "scan_h0_eV_A2": (4 * low[1] - low[0]) / 3,
                      "phonopy_eV_A2": rows[s.name][0], "scan_THz": nu[0],
                      "scan_h0_THz": float(np.sign(nu0) * np.sqrt(abs(nu0))), "phonopy_THz": rows[s.name][1]})
    print(f"\n{request.param} a = {atoms.cell.lengths()[0]:.4f} Å")
    print(json.dumps(table, indent=1))
    return request.param, result, table


def test_the_unstable_stars_are_phonopys_unstable_q_points(comparison):
    name, result, table = comparison
    scan_unstable = {r["star"] for r in table if r["scan_eV_A2"] < UNSTABLE}
    phonopy_unstable = {r["star"] for r in table if r["phonopy_eV_A2"] < UNSTABLE}
    assert scan_unstable == phonopy_unstable
    assert scan_unstable == {s.name for s in result.unstable_stars}  # no strain instability at Γ
    assert {"Γ"} <= scan_unstable  # both: the polar mode; SrTiO3 also the tilts at R
    if name == "SrTiO3":
        assert "R" in scan_unstable


def test_curvatures_and_frequencies_agree_within_five_percent(comparison):
    """Both extrapolated to zero step, which leaves the harmonic curvature alone: the
    scan's 0.01 Å collective displacement and phonopy's 0.01 Å single atom feel the
    soft modes' quartic term differently (SrTiO3's Δ: −0.358 and −0.367 eV/Å² at 0.01 Å,
    −0.377 for both at zero step); the scan as shipped stays within 6 %."""
    _, _, table = comparison
    for r in table:
        if r["phonopy_eV_A2"] < UNSTABLE:
            assert r["scan_h0_eV_A2"] == pytest.approx(r["phonopy_eV_A2"], rel=0.05), r
            assert r["scan_h0_THz"] == pytest.approx(r["phonopy_THz"], rel=0.05), r
            assert r["scan_eV_A2"] == pytest.approx(r["phonopy_eV_A2"], rel=0.06), r
