"""SevenNet's pretrained potentials whose checkpoints ship inside the ``sevenn`` wheel.

``7net-0`` (SevenNet-0, 11Jul2024), ``7net-l3i5`` (SevenNet-l3i5: l_max = 3, 5 layers)
and ``7net-mf-0`` (SevenNet-MF-0, multi-fidelity: one network trained on PBE(+U) and
r²SCAN data, told which fidelity to reproduce by a one-hot *modality* input; the
fidelity is the potential's option, ``7net-mf-0:PBE`` or ``7net-mf-0:R2SCAN``).

Checkpoints are read from the installed wheel's ``pretrained_potentials/`` directory by
path, never by name (sevenn resolves some names by downloading; a checkpoint missing from
the wheel is an error here instead). The elements a checkpoint covers are its config's
``chemical_species``, read without building the model (cached per file in the process).
Every model is float32, built with float32 as torch's default dtype (NequIP makes float64
the process default, and SevenNet's loader then fails comparing its constants).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings

from ..errors import SBSInputError

# name -> (directory/file under sevenn/pretrained_potentials, weights' name, fidelities)
CHECKPOINTS = {
    "7net-0": ("SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth", "SevenNet-0 (11Jul2024)", ()),
    "7net-l3i5": ("SevenNet_l3i5/checkpoint_l3i5.pth", "SevenNet-l3i5", ()),
    "7net-mf-0": ("SevenNet_MF_0/checkpoint_sevennet_mf_0.pth", "SevenNet-MF-0", ("PBE", "R2SCAN")),
}


def checkpoint_path(name: str) -> str:
    """The checkpoint file of ``name`` inside the installed ``sevenn`` package (an
    :class:`SBSInputError` when sevenn or the file is missing; nothing is downloaded)."""
    spec = importlib.util.find_spec("sevenn")
    if spec is None or not spec.submodule_search_locations:
        raise SBSInputError(f"{name} needs the sevenn package: pip install sevenn")
    path = os.path.join(list(spec.submodule_search_locations)[0], "pretrained_potentials", CHECKPOINTS[name][0])
    if not os.path.isfile(path):
        raise SBSInputError(f"{name}: the checkpoint {CHECKPOINTS[name][0]} is not in the installed sevenn "
                            "wheel (it is not downloaded); install a sevenn release that ships it")
    return path


@functools.lru_cache(maxsize=None)
def _species(path: str) -> frozenset:
    import torch

    config = torch.load(path, map_location="cpu", weights_only=False)["config"]
    return frozenset(config["chemical_species"])


def elements(name: str, option: str | None = None) -> frozenset:
    """The chemical symbols the checkpoint of ``name`` was trained on (its type map)."""
    return _species(checkpoint_path(name))


def fidelity(name: str, option: str | None) -> str | None:
    """The fidelity (modality) ``option`` of ``name`` in the checkpoint's own spelling
    (case-insensitive: ``r2scan`` -> ``R2SCAN``); None for single-fidelity models."""
    choices = CHECKPOINTS[name][2]
    if not choices:
        if option:
            raise SBSInputError(f"{name} takes no option (got {name}:{option})")
        return None
    if not option:
        raise SBSInputError(f"{name} is a multi-fidelity model: name the fidelity, "
                            + " or ".join(f"{name}:{c}" for c in choices))
    match = [c for c in choices if c.lower() == option.lower()]
    if not match:
        raise SBSInputError(f"{name}: unknown fidelity {option!r}; use " + " or ".join(f"{name}:{c}" for c in choices))
    return match[0]


def weights(name: str, option: str | None = None) -> str:
    """The weights' printable name, with the fidelity when there is one."""
    label = CHECKPOINTS[name][1]
    return f"{label} ({option})" if option else label


def load(name: str, device: str, option: str | None = None):
    """A ``SevenNetCalculator`` for ``name`` on ``device`` (with its fidelity set)."""
    import torch

    from ..core.irreps import default_dtype

    modal = fidelity(name, option)
    path = checkpoint_path(name)
    with warnings.catch_warnings(), default_dtype(torch.float32):
        warnings.simplefilter("ignore")
        from sevenn.calculator import SevenNetCalculator

        return SevenNetCalculator(path, device=device, modal=modal)
