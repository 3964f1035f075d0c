"""The example NequIP potential of BaTiO3 (examples/nequip/batio3_potential.yaml and
make_batio3_potential_data.py), the NequIP model of the benchmarks: its data are
SevenNet-0 labels of distorted cubic cells, its config trains with ``nequip-train``
(tiny, on CPU), and ase_sbs loads the checkpoint as a potential whose batched and
one-at-a-time evaluations agree."""

import importlib.util
import os
import subprocess
import warnings

import numpy as np
import pytest
import torch
from ase.io import read, write

from ..conftest import EXAMPLES

pytest.importorskip("nequip")
pytestmark = pytest.mark.usefixtures("nequip_dtype")  # NequIP data in float64 (tests/conftest.py)

TINY = ["max_epochs=2", "num_features=8", "num_layers=1"]


def _example_module():
    path = EXAMPLES / "nequip" / "make_batio3_potential_data.py"
    spec = importlib.util.spec_from_file_location("make_batio3_potential_data", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_potential_data_train_and_load(sevennet, tmp_path):
    from ase_sbs.bench import copies
    from ase_sbs.potentials import get_potential
    from ase_sbs.potentials.batched import Graphs, batched_potential

    mod = _example_module()
    frames = mod.label(mod.distorted_frames(10, 1, seed=3), sevennet)
    cubic = read(EXAMPLES / "BaTiO3_cubic.cif")
    e_cubic = sevennet.get_potential_energy(cubic) / len(cubic)
    for a in frames:  # distortions of the cubic parent, labelled by SevenNet-0
        assert sorted(a.get_chemical_symbols()) == sorted(cubic.get_chemical_symbols() * (len(a) // len(cubic)))
        assert np.isfinite(a.get_forces()).all() and a.get_stress().shape == (6,)
        assert a.get_potential_energy() / len(a) > e_cubic - 0.05  # no frame far below the cubic energy
    assert max(np.abs(a.get_forces()).max() for a in frames) > 0.1  # really distorted
    write(tmp_path / "train.extxyz", frames[:9], format="extxyz")
    write(tmp_path / "val.extxyz", frames[9:], format="extxyz")

    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(EXAMPLES.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(["nequip-train", "-cp", str(EXAMPLES / "nequip"), "-cn", "batio3_potential",
                           f"data_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}", *TINY],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pot = get_potential(str(tmp_path / "run" / "last.ckpt"), ["Ba", "Ti", "O"])
        batched = batched_potential(pot)
    assert batched.batched
    structures = copies(cubic.repeat((2, 1, 1)), 2, rattle=0.05, seed=4) + copies(cubic, 1, rattle=0.05, seed=5)
    pos = torch.tensor(np.concatenate([a.positions for a in structures]))
    cells = torch.tensor(np.stack([np.asarray(a.cell) for a in structures]))
    sizes = [len(a) for a in structures]
    graph = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    numbers = torch.tensor(np.concatenate([a.numbers for a in structures]))
    g = Graphs(pos, cells, numbers, graph, [0, *np.cumsum(sizes).tolist()], [True] * len(sizes))
    energy, forces, stress = batched.evaluate(g)
    start = 0
    for k, a in enumerate(structures):
        a.calc = pot.calc
        assert abs(a.get_potential_energy() - energy[k].item()) < 1e-8
        assert np.abs(a.get_forces() - forces[start:start + len(a)].numpy()).max() < 1e-8
        assert np.abs(a.get_stress(voigt=False) - stress[k].numpy()).max() < 1e-10
        start += len(a)
