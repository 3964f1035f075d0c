"""spglib through one door: every call of ase_sbs into spglib (and into ASE's spglib-based
symmetrizer) goes through the functions here.

spglib 2.x reports a failure in one of two ways: the old one (a ``None`` return, a
message in a module global and a ``DeprecationWarning`` on *every* call, failing or not)
or the new one (an exception, :class:`spglib.error.SpglibError`). The old way is spglib's
default until spglib 3 removes it. Here each call runs with the new way switched on
(``spglib.error.OLD_ERROR_HANDLING = False`` for the duration of the call, under a lock,
restored afterwards so that other code in the process keeps the behaviour it expects), so
spglib emits no warning, and a ``SpglibError`` becomes one :class:`SBSInputError` saying
what could not be done, why (spglib's own message), and what to do. A ``None`` return
(still possible when the environment forces the old way with
``SPGLIB_OLD_ERROR_HANDLING=1``) is reported the same way.

spglib's C code also prints diagnostics on file descriptor 2 (``spglib:
ssm_get_exact_positions failed.``) while it searches; they say nothing the exception does
not, and are kept off the terminal (:func:`quiet_c_stderr`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

import numpy as np

from ..errors import SBSInputError

_LOCK = threading.RLock()
_DATASET_ADVICE = ("use a smaller symprec, or check the structure (atoms nearly on top of each other, "
                   "a nearly degenerate cell)")


@contextlib.contextmanager
def quiet_c_stderr():
    """Silence what C libraries (spglib) print on file descriptor 2 while inside."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _failure(problem: str, advice: str, reason: str) -> SBSInputError:
    return SBSInputError(f"{problem} (spglib: {reason}); {advice}")


@contextlib.contextmanager
def spglib_errors(problem: str, advice: str):
    """Run spglib (directly or through ASE) with exceptions instead of the old error
    handling; a :class:`spglib.error.SpglibError` (or ASE's ``OldSpglibError``) becomes
    ``SBSInputError("<problem> (spglib: <its reason>); <advice>")``."""
    import spglib.error as spglib_error
    from ase.utils import OldSpglibError

    with _LOCK, quiet_c_stderr():
        saved = spglib_error.OLD_ERROR_HANDLING
        spglib_error.OLD_ERROR_HANDLING = False
        try:
            yield
        except spglib_error.SpglibError as exc:
            raise _failure(problem, advice, str(exc).strip().replace("\n", " ") or type(exc).__name__) from exc
        except OldSpglibError as exc:
            raise _failure(problem, advice, "no result") from exc
        finally:
            spglib_error.OLD_ERROR_HANDLING = saved


def _checked(result, problem: str, advice: str):
    if result is None:  # the old error handling, forced by SPGLIB_OLD_ERROR_HANDLING
        raise _failure(problem, advice, "no result")
    return result


def symmetry_dataset(cell: tuple, symprec: float, angle_tolerance: float = -1.0):
    """spglib's symmetry dataset of ``cell`` = (lattice rows, fractional positions, types)."""
    import spglib

    problem = f"symprec={symprec} Å finds no consistent symmetry"
    with spglib_errors(problem, _DATASET_ADVICE):
        ds = spglib.get_symmetry_dataset(cell, symprec=symprec, angle_tolerance=angle_tolerance)
    return _checked(ds, problem, _DATASET_ADVICE)


def symmetry_operations(cell: tuple, symprec: float) -> tuple[np.ndarray, np.ndarray]:
    """(W, w): spglib's integer rotations and fractional translations of ``cell``."""
    import spglib

    problem = f"symprec={symprec} Å finds no consistent symmetry"
    with spglib_errors(problem, _DATASET_ADVICE):
        ops = spglib.get_symmetry(cell, symprec=symprec)
    ops = _checked(ops, problem, _DATASET_ADVICE)
    return np.asarray(ops["rotations"]), np.asarray(ops["translations"])


def spacegroup_type_from_symmetry(rotations: np.ndarray, translations: np.ndarray, lattice: np.ndarray,
                                  symprec: float):
    """spglib's space-group type of the operations (W, w) in the basis ``lattice``."""
    import spglib

    problem = f"these {len(rotations)} operations have no space-group type at symprec={symprec} Å"
    advice = "they do not form a space group of this lattice within symprec"
    with spglib_errors(problem, advice):
        t = spglib.get_spacegroup_type_from_symmetry(rotations, translations, lattice, symprec=symprec)
    return _checked(t, problem, advice)


def spacegroup_type_of_hall(hall_number: int):
    """spglib's space-group type of Hall setting ``hall_number`` (1 to 530)."""
    import spglib

    problem = f"Hall setting {hall_number} is not in spglib's database"
    advice = "Hall numbers run from 1 to 530"
    with spglib_errors(problem, advice):
        t = spglib.get_spacegroup_type(hall_number)
    return _checked(t, problem, advice)


def refine_symmetry(atoms, symprec: float) -> None:
    """ASE's ``refine_symmetry`` (spglib underneath): move ``atoms`` in place onto the
    exact symmetry found at ``symprec``."""
    from ase.spacegroup.symmetrize import refine_symmetry as ase_refine

    with spglib_errors(f"the structure cannot be symmetrized at symprec={symprec} Å", _DATASET_ADVICE):
        ase_refine(atoms, symprec=symprec)
