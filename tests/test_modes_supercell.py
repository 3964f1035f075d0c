"""Symmetry modes of a supercell child: the beyond-k=0 part split into the channels of
the parent's space group modulo the child's lattice (SrTiO3 Pm-3m, 2x2x2)."""

import numpy as np
import pytest
from ase.io import read

from ase_sbs.analysis.matching import parent_symmetry, strain_length
from ase_sbs.analysis.modes import BEYOND_K0, decompose
from ase_sbs.setting import STRAIN_BASIS, distortion_channels, supercell_setting
from ase_sbs.setting import distortion_channels as supercell_channels

from .conftest import EXAMPLES, random_orthogonal, transform
from .test_supercell import tilt_pattern


@pytest.fixture(scope="module")
def setup():
    parent = parent_symmetry(read(EXAMPLES / "SrTiO3_cubic.cif"))
    sg = supercell_setting(parent.atoms, (2, 2, 2))
    return parent, distortion_channels(parent), sg, supercell_channels(sg)


def _channel_of(channels, v):
    """The one channel holding the pattern v (displacement ⊕ strain of the supercell)."""
    hits = [c for c in channels if np.linalg.norm(c.basis.T @ v) > (1 - 1e-9) * np.linalg.norm(v)]
    assert len(hits) == 1
    return hits[0]


def _parent_index(sg, parent):
    """Parent atom of each supercell atom (same position modulo the parent lattice)."""
    L = np.asarray(parent.atoms.cell)
    d = (sg.atoms.positions[:, None] - parent.atoms.positions[None]) @ np.linalg.inv(L)
    d = np.linalg.norm((d - np.round(d)) @ L, axis=-1)
    assert (d.min(axis=1) < 1e-8).all()
    return d.argmin(axis=1)


def test_supercell_round_trip_splits_beyond_k0_into_supercell_channels(setup):
    parent, channels, sg, schannels = setup
    rng = np.random.default_rng(11)
    n, N = sg.n_cells, len(sg.atoms)
    Np = len(parent.atoms)
    pidx = _parent_index(sg, parent)
    ell = strain_length(parent.atoms)
    by_label = {c.label: c for c in channels}
    # the tilt a^0a^0c^- and one M-point channel (not the tilts') as unit patterns per supercell
    tilt = np.concatenate([tilt_pattern(sg.atoms, np.array([0.0, 0.0, 1.0])).ravel(), np.zeros(6)])
    tilt /= np.linalg.norm(tilt)
    tilt_channel = _channel_of(schannels, tilt)
    m_channel = next(c for c in schannels if c.label.startswith("M-") and c.dimension * c.multiplicity == 3
                     and c.sources == ("displacement",) and c is not tilt_channel)
    for trial in range(20):
        a = {"T1u": rng.uniform(0.02, 0.1), "Eg": rng.uniform(0.01, 0.05),
             tilt_channel.label: rng.uniform(0.05, 0.15), m_channel.label: rng.uniform(0.01, 0.06)}
        # k = 0: a random unit vector of T1u (polar) and of Eg (strain) in the parent cell
        w = np.zeros(3 * Np + 6)
        for label in ("T1u", "Eg"):
            v = by_label[label].basis @ rng.standard_normal(by_label[label].basis.shape[1])
            w += a[label] * v / np.linalg.norm(v)
        m = m_channel.basis @ rng.standard_normal(m_channel.basis.shape[1])
        beyond = np.sqrt(n) * (a[tilt_channel.label] * tilt + a[m_channel.label] * m / np.linalg.norm(m))
        u = w[: 3 * Np].reshape(Np, 3)[pidx] + beyond[: 3 * N].reshape(N, 3)
        F = np.eye(3) + np.einsum("a,aij->ij", w[3 * Np:], STRAIN_BASIS) / ell
        child = sg.atoms.copy()
        child.positions = (sg.atoms.positions + u) @ F.T
        child.cell = np.asarray(sg.atoms.cell) @ F.T
        g = random_orthogonal(rng, improper=trial % 2 == 1)
        moved = transform(child, g, rng.permutation(N), rng.normal(scale=3.0, size=3))
        # the first trial builds the supercell group itself, the others reuse it
        dec = decompose(moved, parent, channels=channels, supercell_channels=None if trial == 0 else (sg, schannels))
        k0 = {x.label: x.amplitude_A for x in dec.modes}
        for label in ("T1u", "Eg"):
            assert k0[label] == pytest.approx(a[label], abs=1e-6), (trial, label)
        assert k0[BEYOND_K0] == pytest.approx(np.hypot(a[tilt_channel.label], a[m_channel.label]), abs=1e-6)
        assert all(v < 1e-6 for k, v in k0.items() if k not in ("T1u", "Eg", BEYOND_K0)), (trial, k0)
        got = {x.label: x for x in dec.beyond_modes}
        assert dec.beyond_note is None
        for label in (tilt_channel.label, m_channel.label):
            assert got[label].amplitude_A == pytest.approx(a[label], abs=1e-6), (trial, label)
        assert all(x.amplitude_A < 1e-6 for k, x in got.items() if k not in a), trial
        # k = 0 and supercell amplitudes add in quadrature to the total
        parts = [v for k, v in k0.items() if k != BEYOND_K0] + [x.amplitude_A for x in dec.beyond_modes]
        assert np.sqrt(np.sum(np.square(parts))) == pytest.approx(dec.total_A, abs=1e-9)
        # the tilt is the present channel whose isotropy subgroups include I4/mcm, and
        # a tilt about one axis has exactly that isotropy subgroup
        present = [x for x in dec.beyond_modes if x.amplitude_A > 1e-6]
        with_i4mcm = [x.label for x in present if "I4/mcm (140)" in (x.channel_isotropy_subgroups or ())]
        assert with_i4mcm == [tilt_channel.label]
        assert got[tilt_channel.label].kstar == "R" and got[m_channel.label].kstar == "M"
        assert got[tilt_channel.label].isotropy_name == "I4/mcm (140)"
        assert dec.as_dict()["beyond_k0_modes"][0]["kstar"] in ("R", "M")
        # the stabilizer of the whole distortion in G is the child's space group (spglib)
        assert dec.child_symmetry.startswith(dec.supercell_isotropy_name)


def test_a_supercell_too_large_for_the_enumeration_keeps_one_beyond_entry_with_a_note(setup):
    parent = setup[0]
    child = parent.atoms.repeat((3, 3, 3))
    ti = [i for i, s in enumerate(child.get_chemical_symbols()) if s == "Ti"]
    child.positions[ti[0]] += [0.0, 0.0, 0.1]
    child.positions[ti[1]] -= [0.0, 0.0, 0.1]  # no k = 0 part
    dec = decompose(child, parent)
    assert dec.beyond_modes == ()
    assert "too large" in dec.beyond_note and "2×2×2" in dec.beyond_note
    assert dec.mode(BEYOND_K0).amplitude_A == pytest.approx(dec.total_A, abs=1e-12)
    assert dec.total_A > 0.01
