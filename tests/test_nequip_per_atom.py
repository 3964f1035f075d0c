"""Per-atom SBS objects b_i as a NequIP field (``sbs_atom_object``): the biased wrapper
with ``per_atom=True`` on SrTiO3 2×2×2 with the per-atom tilt objects of ase_sbs.sbs,
against ase_sbs.bias; batching; joint O(3) × permutation symmetry; AttachSBS from frame
arrays; SBSNequIPCalculator; configuration errors."""

import numpy as np
import pytest
import torch
from ase.io import read

from ase_sbs.errors import SBSInputError

from .conftest import EXAMPLES, random_orthogonal, transform

nequip = pytest.importorskip("nequip")
pytestmark = pytest.mark.usefixtures("nequip_dtype")  # NequIP data in float64 (tests/conftest.py)

from nequip.data import AtomicDataDict, from_ase  # noqa: E402
from nequip.data.transforms import (  # noqa: E402
    ChemicalSpeciesToAtomTypeMapper,
    NeighborListTransform,
)
from nequip.utils.global_state import set_global_state  # noqa: E402

import ase_sbs.nequip as sn  # noqa: E402
from ase_sbs.bias import BiasDescriptor, evaluate_bias  # noqa: E402
from ase_sbs.sbs import symmetry_breaking_set  # noqa: E402
from ase_sbs.setting import isotropy_subgroups, supercell_setting  # noqa: E402

from .test_nequip import R_MAX, base_config, build, efs  # noqa: E402

TYPES = ["Sr", "Ti", "O"]
KEY = sn.SBS_ATOM_OBJECT_KEY


def sto_config(**kw):
    return base_config(type_names=TYPES, per_type_energy_shifts={"Sr": -1.0, "Ti": -2.0, "O": -3.0}, **kw)


def type_transforms():
    return [ChemicalSpeciesToAtomTypeMapper(TYPES, chemical_species_to_atom_type_map={t: t for t in TYPES}),
            NeighborListTransform(r_max=R_MAX)]


def to_data(atoms, atom_object=None, strength=None):
    d = from_ase(atoms)
    for t in type_transforms():
        d = t(d)
    if atom_object is not None:
        d[KEY] = torch.as_tensor(np.asarray(atom_object, dtype=np.float64))
    if strength is not None:
        d[sn.SBS_STRENGTH_KEY] = torch.tensor([[float(strength)]], dtype=torch.float64)
    return d


@pytest.fixture(scope="module")
def tilt_sbs():
    """SrTiO3 on 2×2×2, the R-point tilt channel's I4/mcm per-atom SBS, and a rattled,
    slightly sheared copy of the supercell (no symmetry left)."""
    from ase_sbs.setting import distortion_channels

    from .test_supercell import _tilt_channel

    set_global_state()
    sg = supercell_setting(read(EXAMPLES / "SrTiO3_cubic.cif"), (2, 2, 2))
    iso = isotropy_subgroups(sg, _tilt_channel(sg, distortion_channels(sg)))
    K = next(k for k in iso if k.spacegroup_number == 140)
    B = symmetry_breaking_set(sg, K)
    atoms = sg.atoms.copy()
    atoms.rattle(0.05, seed=8)
    atoms.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + 0.015 * np.array([[0, 1, 0], [0.4, 0, 0], [0, 0.2, 1]])),
                   scale_atoms=True)
    return B, atoms


@pytest.fixture(scope="module")
def models():
    set_global_state()
    plain = build(sto_config())
    biased = sn.SBSBiasedModel(model=sto_config(), sbs_irreps="1o", per_atom=True, strength=0.0)
    return plain, biased


def test_per_atom_wrapper_matches_model_plus_per_atom_bias(tilt_sbs, models):
    """λ = 0: exactly the wrapped model; λ > 0: E_model + (−λ Σ_i ⟨b_i, D_i⟩) of ase_sbs.bias
    to 1e-8 in energy, forces and stress; the objects reach the model from frame arrays
    (AttachSBS source=arrays) and through SBSNequIPCalculator alike."""
    B, atoms = tilt_sbs
    plain, biased = models
    assert B.objects.shape == (6, len(atoms), 3) and B.irreps == "1o"
    b = B.objects[0]
    e0, f0, s0, _ = efs(plain, to_data(atoms))
    e1, f1, s1, _ = efs(biased, to_data(atoms, b))
    assert np.array_equal(e1, e0) and np.array_equal(f1, f0) and np.array_equal(s1, s0)

    lam = 0.8
    ref = evaluate_bias(atoms, b, "1o", lam, BiasDescriptor("1o", cutoff=R_MAX))
    assert abs(ref.energy) > 1e-4 and abs(ref.forces).max() > 1e-4 and abs(ref.stress).max() > 1e-6
    # a global object cannot give this: the per-atom bias differs from the broadcast mean object's
    glob = evaluate_bias(atoms, b.mean(axis=0), "1o", lam, BiasDescriptor("1o", cutoff=R_MAX))
    assert abs(glob.energy - ref.energy) > 1e-4

    frame = atoms.copy()
    frame.arrays[KEY] = b.copy()
    d = from_ase(frame, include_keys=[KEY])
    for t in type_transforms():
        d = t(d)
    d = sn.AttachSBS("1o", source="arrays", strength=lam)(d)
    e2, f2, s2, out = efs(biased, d)
    assert abs(e2 - (e0 + ref.energy)).max() < 1e-8
    assert abs(f2 - (f0 + ref.forces)).max() < 1e-8
    assert abs(s2[0] - (s0[0] + ref.stress)).max() < 1e-8
    assert abs(out["atomic_energy"].sum().item() - e2[0]) < 1e-10

    calc = sn.SBSNequIPCalculator(biased.eval(), "cpu", sbs_atom_object=b, sbs_strength=lam,
                                  transforms=type_transforms())
    plain_atoms = atoms.copy()
    plain_atoms.calc = calc
    assert abs(plain_atoms.get_potential_energy() - e2[0]) < 1e-9
    assert abs(plain_atoms.get_forces() - f2).max() < 1e-9
    # atoms.arrays wins over the calculator's default
    frame.calc = calc
    frame.arrays[KEY] = B.objects[1].copy()
    e_other, *_ = efs(biased, to_data(atoms, B.objects[1], lam))
    assert abs(frame.get_potential_energy() - e_other[0]) < 1e-9
    assert abs(e_other[0] - e2[0]) > 1e-6


def test_per_atom_objects_batch_per_frame(tilt_sbs, models):
    """Two frames with different per-atom objects (two variants) and strengths, batched,
    give each frame's own energy, forces and stress."""
    B, atoms = tilt_sbs
    _, biased = models
    other = atoms.copy()
    other.rattle(0.04, seed=9)
    frames = [to_data(atoms, B.objects[0], 0.8), to_data(other, B.objects[3], 0.3)]
    eb, fb, sb, _ = efs(biased, AtomicDataDict.batched_from_list([dict(f) for f in frames]))
    n = len(atoms)
    for k, f in enumerate(frames):
        e, fo, s, _ = efs(biased, f)
        assert abs(eb[k] - e[0]) < 1e-9
        assert abs(fb[k * n:(k + 1) * n] - fo).max() < 1e-9
        assert abs(sb[k] - s[0]).max() < 1e-9
    # the objects matter frame by frame: swapping them changes both energies
    swapped = [to_data(atoms, B.objects[3], 0.8), to_data(other, B.objects[0], 0.3)]
    es, *_ = efs(biased, AtomicDataDict.batched_from_list(swapped))
    assert (abs(es - eb) > 1e-6).all()


@pytest.mark.parametrize("improper", [False, True])
def test_per_atom_joint_equivariance(tilt_sbs, models, improper):
    """E(g·x, π; g·b_π) = E(x, b) for random g ∈ O(3) and atom permutations π, forces
    rotate and follow the permutation; b rotated alone (or not permuted) changes E."""
    B, atoms = tilt_sbs
    _, biased = models
    rng = np.random.default_rng(21 + improper)
    b, lam = B.objects[2], 0.6
    e, f, s, _ = efs(biased, to_data(atoms, b, lam))
    for _ in range(2):
        g = random_orthogonal(rng, improper)
        perm = rng.permutation(len(atoms))
        moved = transform(atoms, g, perm, rng.normal(size=3))
        b_g = (b @ g.T)[perm]  # 1o: b_i → g b_i, carried with its atom
        e_g, f_g, s_g, _ = efs(biased, to_data(moved, b_g, lam))
        assert abs(e_g - e).max() < 1e-9
        assert abs(f_g - (f @ g.T)[perm]).max() < 1e-9
        assert abs(s_g[0] - g @ s[0] @ g.T).max() < 1e-9
        e_wrong, *_ = efs(biased, to_data(moved, b[perm], lam))
        assert abs(e_wrong - e).max() > 1e-6


def test_per_atom_energy_is_invariant_under_the_supercell_group(tilt_sbs, models):
    """g = (R, t) of G (parent-lattice translations included): atom π(i) of g·x sits at
    R x_i + t and carries (g·b)_{π(i)} (PerAtomSBS.act); the biased model's energy is
    unchanged, and a translation maps the tilt variant to another member of the orbit."""
    B, _ = tilt_sbs
    _, biased = models
    sg = B.setting
    x = sg.atoms.copy()
    x.rattle(0.04, seed=12)
    b, lam = B.objects[0], 0.7
    e, *_ = efs(biased, to_data(x, b, lam))
    for g in list(sg.pure_translations[1:3]) + [5, 77, 200]:
        p = sg.permutations[g]
        y = x.copy()
        y.positions[p] = x.positions @ sg.rotations[g].T + sg.translations[g]
        b_g = B.act(g, b)
        assert B.contains(b_g)
        e_g, *_ = efs(biased, to_data(y, b_g, lam))
        assert abs(e_g - e).max() < 1e-9
    t = sg.pure_translations[1]
    e_t, *_ = efs(biased, to_data(x, B.act(t, b), lam))  # the translated domain on the same x
    assert abs(e_t - e).max() > 1e-6


def test_per_atom_configuration_errors(tilt_sbs, models):
    B, atoms = tilt_sbs
    _, biased = models
    n = len(atoms)
    with pytest.raises(SBSInputError, match="per_atom=True"):
        sn.SBSBiasedModel(model=sto_config(), sbs_irreps="1o", per_atom=True, sbs_object=[0, 0, 1])
    with pytest.raises(ValueError, match=rf"shape \({n}, 8\).*needs \({n}, 3\)"):
        biased(dict(to_data(atoms, np.zeros((n, 8)), 0.1)))
    with pytest.raises(ValueError, match="needs `sbs_atom_object`"):
        biased(dict(to_data(atoms, None, 0.1)))
    with pytest.raises(SBSInputError, match="no per-atom `sbs_atom_object`"):
        sn.AttachSBS("1o", source="arrays")(to_data(atoms))
    with pytest.raises(SBSInputError, match=rf"need \({n}, 8\)"):
        sn.AttachSBS("1o+2e", source="arrays")(to_data(atoms, B.objects[0]))
    with pytest.raises(SBSInputError, match="one object per atom"):
        calc = sn.SBSNequIPCalculator(biased.eval(), "cpu", sbs_atom_object=B.objects[0][:-1],
                                      transforms=type_transforms())
        a = atoms.copy()
        a.calc = calc
        a.get_potential_energy()


def test_channel_curvature_by_autograd_through_a_nequip_model(tilt_sbs, models):
    """The explorer's curvature of a NequIP model: Hessian-vector products by autograd
    through the model's energy network equal central differences of its forces (the tilt
    channel and the channel with most copies of SrTiO3 2×2×2)."""
    from nequip.integrations.ase import NequIPCalculator

    from ase_sbs.potentials import torch_energy
    from ase_sbs.setting import channel_curvature, distortion_channels

    from .test_supercell import _tilt_channel

    plain, _ = models
    calc = NequIPCalculator(plain.eval(), "cpu", transforms=type_transforms())
    energy = torch_energy(calc)
    assert energy is not None and torch_energy(object()) is None
    sg = tilt_sbs[0].setting
    channels = distortion_channels(sg)
    widest = max(channels, key=lambda c: c.multiplicity)
    for c in (_tilt_channel(sg, channels), widest):
        auto = np.array(channel_curvature(sg, c, energy))
        fd = np.array(channel_curvature(sg, c, calc, step=1e-3))
        assert len(auto) == c.multiplicity and np.abs(auto).max() > 1e-3
        assert np.allclose(auto, fd, atol=1e-5 * max(1.0, np.abs(fd).max())), (c.label, auto, fd)
