"""NequIP extension, in process (no training): the biased wrapper against ase_sbs.bias,
joint O(3) equivariance of both models, batching of the SBS fields, and the errors a
wrong configuration gets when it is built/loaded."""

import numpy as np
import pytest
import torch
from ase.io import read
from e3nn import o3

from ase_sbs.errors import SBSInputError

from .conftest import EXAMPLES

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

TYPES = ["Ba", "Ti", "O"]
R_MAX = 5.0


def base_config(dtype="float64", **kw):
    cfg = dict(_target_="nequip.model.NequIPGNNModel", seed=11, model_dtype=dtype, type_names=TYPES, r_max=R_MAX,
               num_layers=2, l_max=1, num_features=8, radial_mlp_width=16, avg_num_neighbors=20.0,
               per_type_energy_shifts={"Ba": -1.0, "Ti": -2.0, "O": -3.0}, per_type_energy_scales=1.0)
    cfg.update(kw)
    return cfg


def build(cfg):
    from hydra.utils import get_method

    cfg = dict(cfg)
    return get_method(cfg.pop("_target_"))(**cfg)


def to_data(atoms, **fields):
    d = from_ase(atoms)
    d = ChemicalSpeciesToAtomTypeMapper(TYPES, chemical_species_to_atom_type_map={t: t for t in TYPES})(d)
    d = NeighborListTransform(r_max=R_MAX)(d)
    for k, v in fields.items():
        d[k] = torch.as_tensor(np.asarray(v, dtype=np.float64)).reshape(1, -1)
    return d


def efs(model, data):
    out = model(dict(data))
    return (out["total_energy"].detach().numpy().reshape(-1), out["forces"].detach().numpy(),
            out["stress"].detach().numpy().reshape(-1, 3, 3), out)


@pytest.fixture(scope="module")
def distorted():
    """A rattled, sheared BaTiO3 1×1×2 cell (no symmetry left)."""
    set_global_state()
    a = read(EXAMPLES / "BaTiO3_cubic.cif").repeat((1, 1, 2))
    a.rattle(0.06, seed=3)
    a.set_cell(np.asarray(a.cell) @ (np.eye(3) + 0.02 * np.array([[0, 1, 0], [0.5, 0, 0], [0, 0.3, 1]])),
               scale_atoms=True)
    return a


def random_o3(rng, improper):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    return -q if improper else q


def transformed(atoms, g):
    out = atoms.copy()
    out.positions = atoms.positions @ g.T
    out.set_cell(np.asarray(atoms.cell) @ g.T, scale_atoms=False)
    return out


def test_biased_wrapper_matches_model_plus_bias(distorted):
    """λ = 0: exactly the wrapped model (1e-10); λ > 0: E_model + E_sb of ase_sbs.bias (1e-8),
    for forces and stress too; two frames with their own b and λ batch like single frames."""
    plain = build(base_config())
    irreps, b = "1o+2e", np.array([0.3, -0.2, 0.9, 0.1, -0.5, 0.4, 0.2, -0.7])
    biased = sn.SBSBiasedModel(model=base_config(), sbs_irreps=irreps, sbs_object=b, strength=0.0)
    inner = biased.model.func.model  # the wrapped energy model: same builder, same seed, same weights
    for (k, v), (k2, v2) in zip(plain.model.func.state_dict().items(), inner.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    e0, f0, s0, _ = efs(plain, to_data(distorted))
    e1, f1, s1, _ = efs(biased, to_data(distorted))
    assert abs(e1 - e0).max() < 1e-10 and abs(f1 - f0).max() < 1e-10 and abs(s1 - s0).max() < 1e-10

    lam = 0.8
    e2, f2, s2, out = efs(biased, to_data(distorted, sbs_strength=[lam]))
    ref = evaluate_bias(distorted, b, irreps, lam, BiasDescriptor(irreps, cutoff=R_MAX))
    assert abs(ref.energy) > 1e-4 and abs(ref.forces).max() > 1e-4  # the bias is really there
    assert abs(e2 - (e0 + ref.energy)).max() < 1e-8
    assert abs(f2 - (f0 + ref.forces)).max() < 1e-8
    assert abs(s2[0] - (s0[0] + ref.stress)).max() < 1e-8
    # per-atom energies sum to the total, bias included
    assert abs(out["atomic_energy"].sum().item() - e2[0]) < 1e-10

    # batch: frame 1 = distorted with (b, λ), frame 2 = its O(3) image with its own b', λ'
    other = transformed(distorted, random_o3(np.random.default_rng(0), True))
    b2, lam2 = -0.5 * b[::-1], 0.3
    frames = [to_data(distorted, sbs_object=b, sbs_strength=[lam]), to_data(other, sbs_object=b2, sbs_strength=[lam2])]
    eb, fb, sb, _ = efs(biased, AtomicDataDict.batched_from_list(frames))
    e_other, f_other, s_other, _ = efs(biased, frames[1])
    n = len(distorted)
    assert abs(eb - np.concatenate([e2, e_other])).max() < 1e-9
    assert abs(fb[:n] - f2).max() < 1e-9 and abs(fb[n:] - f_other).max() < 1e-9
    assert abs(sb[1] - s_other[0]).max() < 1e-9


@pytest.mark.parametrize("improper", [False, True])
def test_joint_equivariance_of_both_models(distorted, improper):
    """E(g·x, D(g)b) = E(x, b); forces, displacements rotate; stress → g σ gᵀ; for random
    g ∈ O(3), proper and improper, for the biased wrapper (λ > 0) and the SBS GNN."""
    irreps = "1o+2e"
    Irr = o3.Irreps(irreps)
    rng = np.random.default_rng(5 + improper)
    b = rng.normal(size=Irr.dim)
    biased = sn.SBSBiasedModel(model=base_config(), sbs_irreps=irreps, strength=0.5)
    gnn = sn.SBSNequIPGNNModel(sbs_irreps=irreps, seed=2, model_dtype="float64", type_names=TYPES, r_max=R_MAX,
                               num_layers=2, num_features=8, radial_mlp_width=16)
    for _ in range(2):
        g = random_o3(rng, improper)
        Dg = Irr.D_from_matrix(torch.as_tensor(g)).numpy()
        moved = transformed(distorted, g)
        for model in (biased, gnn):
            e, f, s, out = efs(model, to_data(distorted, sbs_object=b))
            e_g, f_g, s_g, out_g = efs(model, to_data(moved, sbs_object=Dg @ b))
            assert abs(e_g - e).max() < 1e-9
            assert abs(f_g - f @ g.T).max() < 1e-9
            assert abs(s_g[0] - g @ s[0] @ g.T).max() < 1e-9
            if model is gnn:
                u, u_g = out["sbs_displacements"].detach().numpy(), out_g["sbs_displacements"].detach().numpy()
                assert abs(u).max() > 1e-6
                assert abs(u_g - u @ g.T).max() < 1e-9
            # b matters: the symmetry is joint, not separate
            e_wrong, *_ = efs(model, to_data(moved, sbs_object=b))
            assert abs(e_wrong - e).max() > 1e-9


def test_sbs_fields_batch_per_frame():
    a = read(EXAMPLES / "BaTiO3_cubic.cif")
    frames = [to_data(a, sbs_object=[1.0, 0, 0], sbs_strength=[0.1]), to_data(a, sbs_object=[0, 0, -1.0])]
    frames[1][sn.SBS_STRENGTH_KEY] = torch.tensor([[0.2]], dtype=torch.float64)
    batch = AtomicDataDict.batched_from_list(frames)
    assert batch[sn.SBS_OBJECT_KEY].shape == (2, 3) and batch[sn.SBS_STRENGTH_KEY].shape == (2, 1)
    back = AtomicDataDict.frame_from_batched(batch, 1)
    assert back[sn.SBS_OBJECT_KEY].tolist() == [[0.0, 0.0, -1.0]]


def test_attach_sbs_sources_and_errors():
    a = read(EXAMPLES / "BaTiO3_cubic.cif")
    # constant
    d = sn.AttachSBS("1o", source="constant", object=[0, 0, 1], strength=0.2)(to_data(a))
    assert d[sn.SBS_OBJECT_KEY].shape == (1, 3) and d[sn.SBS_STRENGTH_KEY].item() == 0.2
    # info: a frame without the field, and one whose object has the wrong irreps
    with pytest.raises(SBSInputError, match="include_keys"):
        sn.AttachSBS("1o", source="info")(to_data(a))
    with pytest.raises(SBSInputError, match="other irreps than the model expects"):
        sn.AttachSBS("1o+2e", source="info")(to_data(a, sbs_object=[0, 0, 1]))
    with pytest.raises(SBSInputError, match="e3nn irreps"):
        sn.AttachSBS("vector", source="info")
    with pytest.raises(SBSInputError, match="source"):
        sn.AttachSBS("1o", source="somewhere")


def test_parent_source_recovers_the_member():
    """A P4mm variant built by moving Ti along D(s)·b₀ for each member gets that member back."""
    parent = read(EXAMPLES / "BaTiO3_cubic.cif")
    t = sn.AttachSBS("1o", source="parent", parent=str(EXAMPLES / "BaTiO3_cubic.cif"), target="P4mm")
    assert len(t.sbs) == 6
    ti = parent.get_chemical_symbols().index("Ti")
    # the descriptor's response sign: which way Ti moves for member 0
    probe = parent.copy()
    probe.positions[ti] += 0.05 * t.sbs.objects[0]
    sign = 1.0 if t.member_of(probe) == 0 else -1.0
    for j, b in enumerate(t.sbs.objects):
        v = parent.copy()
        v.positions[ti] += sign * 0.05 * b
        v.set_cell(np.asarray(v.cell) * 1.01, scale_atoms=True)
        assert t.member_of(v) == j
        d = t(to_data(v))
        assert np.allclose(d[sn.SBS_OBJECT_KEY].numpy()[0], b)
    with pytest.raises(SBSInputError, match="cannot tell"):
        t.member_of(parent)
    with pytest.raises(SBSInputError, match="irreps"):
        sn.AttachSBS("2e", source="parent", parent=str(EXAMPLES / "BaTiO3_cubic.cif"), target="P4mm")


def test_configuration_mistakes_fail_at_build_time():
    set_global_state()
    with pytest.raises(SBSInputError, match="float32 but SBSBiasedModel has model_dtype=float64"):
        sn.SBSBiasedModel(model=base_config("float32"), sbs_irreps="1o", model_dtype="float64")
    with pytest.raises(SBSInputError, match="sbs_object has 3 components"):
        sn.SBSBiasedModel(model=base_config(), sbs_irreps="2e", sbs_object=[0, 0, 1])
    with pytest.raises(SBSInputError, match="exceeds the wrapped model's r_max"):
        sn.SBSBiasedModel(model=base_config(), sbs_irreps="1o", cutoff=6.0)
    with pytest.raises(SBSInputError, match="_target_"):
        sn.SBSBiasedModel(model={"r_max": 5.0}, sbs_irreps="1o")
    with pytest.raises(SBSInputError, match="e3nn irreps"):
        sn.SBSNequIPGNNModel(sbs_irreps="1x", seed=0, model_dtype="float64", type_names=TYPES, r_max=R_MAX)
    # a model given objects of other irreps than it was built for says so, at the first batch
    gnn = sn.SBSNequIPGNNModel(sbs_irreps="1o+2e", seed=0, model_dtype="float64", type_names=TYPES, r_max=R_MAX,
                               num_layers=1, num_features=4)
    a = read(EXAMPLES / "BaTiO3_cubic.cif")
    with pytest.raises(ValueError, match="has 3 components per frame but the model.s SBS irreps "
                                         "1x1o\\+1x2e have dimension 8"):
        gnn(to_data(a, sbs_object=[0, 0, 1]))
    with pytest.raises(ValueError, match="needs `sbs_object`"):
        gnn(to_data(a))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_models_run_on_cuda(distorted):
    """Both models on CUDA give the CPU numbers (batched frames with their own b, λ)."""
    from nequip.data import AtomicDataDict as A

    irreps, b = "1o", [0.2, -0.4, 0.9]
    biased = sn.SBSBiasedModel(model=base_config(), sbs_irreps=irreps, strength=0.3)
    gnn = sn.SBSNequIPGNNModel(sbs_irreps=irreps, seed=2, model_dtype="float64", type_names=TYPES, r_max=R_MAX,
                               num_layers=2, num_features=8)
    batch = A.batched_from_list([to_data(distorted, sbs_object=b, sbs_strength=[0.3]),
                                 to_data(distorted, sbs_object=b[::-1], sbs_strength=[0.1])])
    for model in (biased, gnn):
        e, f, s, _ = efs(model, batch)
        out = model.to("cuda")(A.to_(dict(batch), torch.device("cuda")))
        assert abs(out["total_energy"].detach().cpu().numpy().reshape(-1) - e).max() < 1e-9
        assert abs(out["forces"].detach().cpu().numpy() - f).max() < 1e-9
        model.to("cpu")


def test_nequip_train_refuses_data_without_the_model_irreps(tmp_path):
    """End to end: the example config with sbs_irreps the data do not carry stops while
    the data are loaded, before any training step, with the SBSInputError message."""
    import os
    import subprocess

    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    frame = read(EXAMPLES / "BaTiO3_cubic.cif")
    frame.info["sbs_object"] = np.array([0.0, 0.0, 1.0])
    frame.arrays["sbs_displacements"] = np.zeros((len(frame), 3))
    frame.calc = SinglePointCalculator(frame, energy=-40.0)
    write(tmp_path / "train.extxyz", [frame], format="extxyz")
    env = {**os.environ, "PYTHONPATH": str(EXAMPLES.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        ["nequip-train", "-cp", str(EXAMPLES / "nequip"), "-cn", "batio3_sbs_gnn", f"data_dir={tmp_path}",
         "sbs_irreps=1o+2e", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode != 0
    assert "SBSInputError: a frame's `sbs_object` has 3 components but the configured SBS irreps" in proc.stderr
    assert not (tmp_path / "run" / "last.ckpt").exists()
