"""The biased NequIP potential through NequIP's own workflow on CPU: ``nequip-train`` (tiny,
examples/nequip/biased_potential.yaml), ``nequip-package``, ``nequip-compile --mode
aotinductor`` (target ``ase_sbs``: b and λ are inputs), then the compiled file in
``SBSNequIPCalculator`` and in ``ase-sbs explore --calc model.nequip.pt2``.

Three compiles (targets ``ase_sbs``, ``batch_sbs`` and NequIP's ``batch``): AOTInductor on
CPU takes one to two minutes each, so the default suite compiles once (``ase_sbs``) and the
two batch targets are marked slow."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from ase.io import read

from .conftest import EXAMPLES

pytest.importorskip("nequip")
pytestmark = pytest.mark.usefixtures("nequip_dtype")  # NequIP data in float64 (tests/conftest.py)

B = [0.1, 0.2, 0.3, -0.4, 0.5]  # a generic 2e object
TINY = ["max_epochs=1", "num_frames=8", "num_features=4", "num_layers=1", "n_radial=2"]
CUTOFF, N_RADIAL = 4.5, 2  # the config's cutoff_radius and the n_radial above


def _env():
    root = str(EXAMPLES.parent)
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


def _run(cmd, cwd):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=cwd)
    assert proc.returncode == 0, (cmd, proc.stdout[-2000:], proc.stderr[-4000:])
    return proc


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    d = tmp_path_factory.mktemp("biased")
    _run(["nequip-train", "-cp", str(EXAMPLES / "nequip"), "-cn", "biased_potential", f"hydra.run.dir={d / 'run'}",
          *TINY], d)
    ckpt = d / "run" / "last.ckpt"
    return d, ckpt, _compile_for((d, ckpt, None), "ase_sbs")


def _compile_for(artifacts, target: str):
    """The artifacts' checkpoint compiled (AOTInductor, CPU) for ``target``."""
    d, ckpt, _ = artifacts
    out = d / f"biased_{target}.nequip.pt2"
    _run([sys.executable, "-m", "ase_sbs.nequip.compile", str(ckpt), str(out), "--mode", "aotinductor",
          "--device", "cpu", "--target", target], d)
    return out


@pytest.fixture(scope="module")
def batch_pt2(artifacts):
    """The checkpoint compiled for ``--target batch_sbs`` (a batch of frames, one b and λ each)."""
    return _compile_for(artifacts, "batch_sbs")


@pytest.fixture(scope="module")
def batch_plain_pt2(artifacts):
    """The checkpoint compiled for NequIP's own ``--target batch`` (b and λ of the config fixed inside)."""
    return _compile_for(artifacts, "batch")


@pytest.fixture(scope="module")
def cu():
    a = read(EXAMPLES / "Cu_bcc.cif").repeat((2, 1, 1))
    a.rattle(0.05, seed=2)
    a.set_cell(np.asarray(a.cell) * 1.01, scale_atoms=True)
    return a


def _efs(calc, atoms):
    a = atoms.copy()
    a.calc = calc
    return a.get_potential_energy(), a.get_forces(), a.get_stress(voigt=False)


def test_compiled_biased_model_in_calculator(artifacts, cu):
    """Compiled = eager checkpoint, for λ = 0 and λ > 0; compiled(λ) − compiled(0) = E_sb of
    ase_sbs.bias (energy, forces, stress, 1e-8)."""
    from ase_sbs.bias import BiasDescriptor, evaluate_bias
    from ase_sbs.nequip import SBSNequIPCalculator
    from ase_sbs.nequip.calculator import load_calculator
    from ase_sbs.potentials import get_potential

    _, ckpt, pt2 = artifacts
    lam = 0.4
    for strength in (0.0, lam):
        compiled = load_calculator(str(pt2), sbs_object=B, sbs_strength=strength)
        assert isinstance(compiled, SBSNequIPCalculator)
        eager = SBSNequIPCalculator._from_saved_model(str(ckpt), sbs_object=B, sbs_strength=strength)
        for x, y in zip(_efs(compiled, cu), _efs(eager, cu)):
            assert np.abs(np.asarray(x) - np.asarray(y)).max() < 1e-8
    e0, f0, s0 = _efs(load_calculator(str(pt2), sbs_object=B, sbs_strength=0.0), cu)
    e1, f1, s1 = _efs(load_calculator(str(pt2), sbs_object=B, sbs_strength=lam), cu)
    ref = evaluate_bias(cu, B, "2e", lam, BiasDescriptor("2e", cutoff=CUTOFF, n_radial=N_RADIAL))
    assert abs(ref.energy) > 1e-5
    assert abs(e1 - e0 - ref.energy) < 1e-8
    assert np.abs(f1 - f0 - ref.forces).max() < 1e-8
    assert np.abs(s1 - s0 - ref.stress).max() < 1e-8
    # potentials.py loads it with λ = 0 (b = 0): the unbiased model
    pot = get_potential(str(pt2), ["Cu"])
    assert isinstance(pot.calc, SBSNequIPCalculator) and pot.calc.sbs_strength == 0.0
    e_pot, f_pot, _ = _efs(pot.calc, cu)
    assert abs(e_pot - e0) < 1e-8 and np.abs(f_pot - f0).max() < 1e-8


def test_wrapping_checkpoint_and_package(artifacts, cu):
    """SBSBiasedModel around ModelFromCheckpoint and ModelFromPackage: λ = 0 is the loaded
    model itself (1e-10), λ > 0 adds E_sb (1e-8)."""
    from nequip.data import from_ase
    from nequip.data.transforms import (
        ChemicalSpeciesToAtomTypeMapper,
        NeighborListTransform,
    )
    from nequip.model.saved_models import ModelFromCheckpoint
    from nequip.utils.global_state import set_global_state

    from ase_sbs.bias import BiasDescriptor, evaluate_bias
    from ase_sbs.nequip import SBSBiasedModel

    d, ckpt, _ = artifacts
    pkg = d / "biased.nequip.zip"
    _run(["nequip-package", "build", str(ckpt), str(pkg)], d)
    set_global_state()  # once per process: an earlier test may have run it, and the default dtype was reset since
    torch.set_default_dtype(torch.float64)  # NequIP's; tests/conftest.py restores the default afterwards
    data = NeighborListTransform(r_max=CUTOFF)(
        ChemicalSpeciesToAtomTypeMapper(["Cu"], chemical_species_to_atom_type_map={"Cu": "Cu"})(from_ase(cu)))

    def efs(model, **fields):
        x = dict(data)
        x.update({k: torch.as_tensor(v, dtype=torch.float64).reshape(1, -1) for k, v in fields.items()})
        out = model(x)
        return out["total_energy"].item(), out["forces"].detach().numpy(), out["stress"].detach().numpy()[0]

    loaded = ModelFromCheckpoint(str(ckpt))
    loaded = loaded["sole_model"] if isinstance(loaded, torch.nn.ModuleDict) else loaded
    e, f, s = efs(loaded)
    lam, b1 = 0.3, [0.0, 0.6, -0.2]
    # the loaded model is itself biased (its own 2e b): a λ in the data reaches both biases,
    # so the reference model is the loaded one at the same λ
    e_l, f_l, s_l = efs(loaded, sbs_strength=[lam])
    ref = evaluate_bias(cu, b1, "1o", lam, BiasDescriptor("1o", cutoff=CUTOFF))
    for source in ({"_target_": "nequip.model.ModelFromCheckpoint", "checkpoint_path": str(ckpt)},
                   {"_target_": "nequip.model.ModelFromPackage", "package_path": str(pkg)}):
        wrapped = SBSBiasedModel(model=source, sbs_irreps="1o", sbs_object=b1, strength=0.0, model_dtype="float64")
        e0, f0, s0 = efs(wrapped)
        assert abs(e0 - e) < 1e-10 and np.abs(f0 - f).max() < 1e-10 and np.abs(s0 - s).max() < 1e-10
        e1, f1, s1 = efs(wrapped, sbs_strength=[lam])
        assert abs(e1 - e_l - ref.energy) < 1e-8
        assert np.abs(f1 - f_l - ref.forces).max() < 1e-8 and np.abs(s1 - s_l - ref.stress).max() < 1e-8
    # --calc on a package of a biased model: fed λ = 0, i.e. the unbiased model
    from ase_sbs.nequip import SBSNequIPCalculator
    from ase_sbs.potentials import get_potential

    pot = get_potential(str(pkg), ["Cu"])
    assert isinstance(pot.calc, SBSNequIPCalculator) and pot.calc.sbs_strength == 0.0
    e_zero, *_ = efs(loaded, sbs_strength=[0.0])
    a = cu.copy()
    a.calc = pot.calc
    assert abs(a.get_potential_energy() - e_zero) < 1e-10 and abs(e_zero - e) > 1e-8


def test_explore_cli_with_compiled_model(artifacts, tmp_path):
    """``ase-sbs explore FILE --calc model.nequip.pt2`` runs end to end on CPU."""
    _, _, pt2 = artifacts
    out = tmp_path / "explore"
    proc = subprocess.run(
        ["ase-sbs", "explore", str(EXAMPLES / "Cu_bcc.cif"), "--calc", str(pt2), "--targets", "I4/mmm",
         "--max-steps", "60", "--no-progress", "--out", str(out), "--json", "-"],
        capture_output=True, text=True, env=_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["potential"] == pt2.name
    assert result["relaxations"] and all(r["target"] for r in result["relaxations"])


def test_batched_engine_with_compiled_model(artifacts):
    """The batched engine relaxes with the compiled model (its relaxations, energies and
    classification equal the ASE path's); a model that cannot take a batch is evaluated
    one frame at a time, with a warning, never silently."""
    import warnings

    from ase_sbs import break_symmetry

    _, _, pt2 = artifacts
    atoms = read(EXAMPLES / "Cu_bcc.cif")
    kwargs = dict(targets="I4/mmm", progress=False, max_steps=60)
    ase_path = break_symmetry(atoms, str(pt2), engine="ase", **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batched = break_symmetry(atoms, str(pt2), engine="batched", **kwargs)
    assert any("one structure at a time" in str(w.message) for w in caught)
    assert len(batched.relaxations) == len(ase_path.relaxations) > 0
    for a, b in zip(ase_path.relaxations, batched.relaxations):
        assert (a.status, a.spacegroup_number) == (b.status, b.spacegroup_number)
        assert abs(a.energy_per_atom - b.energy_per_atom) < 5e-4
    assert [p.spacegroup_number for p in ase_path.phases] == [p.spacegroup_number for p in batched.phases]


@pytest.mark.slow  # one more AOTInductor compile
def test_batch_sbs_target_evaluates_whole_batches(artifacts, batch_pt2, cu):
    """A model compiled with ``--target batch_sbs`` takes a batch of frames, each with its
    own b and λ: it equals the ``ase_sbs``-compiled model frame by frame (1e-8), a batch
    equals its frames one at a time, and the batched engine evaluates whole batches with
    it (no one-frame fallback, no warning) and relaxes as the ASE path does."""
    import warnings

    from nequip.data import AtomicDataDict

    from ase_sbs import break_symmetry
    from ase_sbs.nequip import SBSBatchNequIPCalculator
    from ase_sbs.nequip.calculator import load_calculator
    from ase_sbs.potentials import get_potential
    from ase_sbs.relax.engine import Engine

    _, _, pt2 = artifacts
    batch = load_calculator(str(batch_pt2), sbs_object=B, sbs_strength=0.4)
    assert isinstance(batch, SBSBatchNequIPCalculator)
    single = load_calculator(str(pt2), sbs_object=B, sbs_strength=0.4)
    for x, y in zip(_efs(batch, cu), _efs(single, cu)):
        assert np.abs(np.asarray(x) - np.asarray(y)).max() < 1e-8
    frames, alone = [], []
    rng = np.random.default_rng(5)
    for k in range(3):  # different structures, objects and strengths in one batch
        a = cu.copy()
        a.rattle(0.03, seed=10 + k)
        a.info["sbs_object"] = rng.normal(size=5)
        a.info["sbs_strength"] = 0.3 * k
        frames.append(batch.atoms_to_data(a))
        alone.append(_efs(single, a))
    out = batch.call_model(AtomicDataDict.batched_from_list(frames))
    energies = out[AtomicDataDict.TOTAL_ENERGY_KEY].detach().reshape(-1).numpy()
    forces = out[AtomicDataDict.FORCE_KEY].detach().numpy().reshape(3, len(cu), 3)
    assert np.abs(energies - [e for e, _, _ in alone]).max() < 1e-8
    assert np.abs(forces - np.stack([f for _, f, _ in alone])).max() < 1e-8
    assert len({round(float(e), 6) for e in energies}) == 3

    atoms = read(EXAMPLES / "Cu_bcc.cif")
    kwargs = dict(targets="I4/mmm", progress=False, max_steps=60)
    ase_path = break_symmetry(atoms, str(pt2), engine="ase", **kwargs)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*cannot evaluate batches")
        engine = Engine(get_potential(str(batch_pt2), ["Cu"]), device="cpu", optimizer="bfgs")
        batched = break_symmetry(atoms, str(batch_pt2), engine=engine, **kwargs)
    assert engine.potential.batched and max(engine.evaluations) > 1
    for a, b in zip(ase_path.relaxations, batched.relaxations):
        assert (a.status, a.spacegroup_number) == (b.status, b.spacegroup_number)
        assert abs(a.energy_per_atom - b.energy_per_atom) < 5e-4


@pytest.mark.slow  # one more AOTInductor compile
def test_nequip_batch_target_in_the_engine(artifacts, batch_plain_pt2, cu):
    """NequIP's ``--target batch``: loaded as BatchNequIPCalculator, it is the model at the
    config's fixed b and λ (= the ``ase_sbs``-compiled model given them, 1e-8), also for a
    single frame, and the engine's potential evaluates a batch of frames at once with the
    results of one call per frame."""
    import yaml

    from ase_sbs.bench import copies
    from ase_sbs.nequip import BatchNequIPCalculator
    from ase_sbs.nequip.calculator import load_calculator
    from ase_sbs.potentials.batched import Graphs, batched_potential

    config = yaml.safe_load((EXAMPLES / "nequip" / "biased_potential.yaml").read_text())
    _, _, pt2 = artifacts
    plain = load_calculator(str(batch_plain_pt2))
    assert isinstance(plain, BatchNequIPCalculator)
    fixed = load_calculator(str(pt2), sbs_object=config["sbs_object"], sbs_strength=config["strength"])
    for x, y in zip(_efs(plain, cu), _efs(fixed, cu)):
        assert np.abs(np.asarray(x) - np.asarray(y)).max() < 1e-8
    potential = batched_potential(plain)
    assert potential.batched
    structures = copies(cu, 3, rattle=0.04, seed=6)
    energy, forces, stress = potential.evaluate(Graphs.of(structures, potential.cutoff, "cpu"))
    for k, a in enumerate(structures):
        e, f, s = _efs(plain, a)
        assert abs(e - energy[k].item()) < 1e-8
        assert np.abs(f - forces[len(cu) * k:len(cu) * (k + 1)].numpy()).max() < 1e-8
        assert np.abs(s - stress[k].numpy()).max() < 1e-8
