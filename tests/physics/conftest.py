"""SevenNet-0 fixtures shared by the whole test run: the calculator and the cubic BaTiO3 exploration
are expensive on CPU, so every physics test module shares one of each."""

import pytest
from ase.io import read

from ase_sbs import break_symmetry
from ase_sbs.potentials import get_potential

from ..conftest import EXAMPLES


@pytest.fixture(scope="session")
def sevennet():
    return get_potential("7net-0", ["Ba", "Ti", "O", "N", "H", "Sr"]).calc


@pytest.fixture(scope="session")
def batio3_exploration(sevennet):
    """The polar phases of cubic BaTiO3 through the ASE path (one member per target)."""
    atoms = read(EXAMPLES / "BaTiO3_cubic.cif")
    return break_symmetry(atoms, sevennet, targets="P4mm,Amm2,R3m", progress=False)
