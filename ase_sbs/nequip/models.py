"""Model builders usable as ``_target_:`` in NequIP training configs.

- :func:`SBSBiasedModel`: any NequIP-framework model (a builder sub-config,
  ``nequip.model.ModelFromPackage`` or ``nequip.model.ModelFromCheckpoint``) plus
  E_sb = −λ ⟨b, D(x)⟩ inside the model, before NequIP's autograd force/stress output,
  so forces and stress include the bias. λ = 0 reproduces the wrapped model exactly.
- :func:`SBSNequIPGNNModel`: a NequIP GNN conditioned on the SBS object (the paper's
  method): b enters every atom's initial features; energies, forces and per-atom
  displacement vectors (``sbs_displacements``, 1o) are jointly equivariant in (x, b).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Dict, List, Optional, Sequence, Union

import torch
from e3nn import o3
from nequip.data import AtomicDataDict
from nequip.model.utils import model_builder
from nequip.nn import (
    ApplyFactor,
    AtomwiseLinear,
    ConvNetLayer,
    ForceStressOutput,
    GraphModel,
    PerTypeScaleShift,
    SequentialGraphNetwork,
)
from nequip.nn.embedding import (
    BesselEdgeLengthEncoding,
    EdgeLengthNormalizer,
    NodeTypeEmbed,
    PolynomialCutoff,
    SphericalHarmonicEdgeAttrs,
)
from nequip.utils import (
    conditional_torchscript_mode,
    dtype_from_name,
    torch_default_dtype,
)

from ..bias.descriptor import DEFAULT_CUTOFF
from ..errors import SBSInputError
from .fields import (
    SBS_ATOM_OBJECT_KEY,
    SBS_DISPLACEMENTS_KEY,
    SBS_OBJECT_KEY,
    SBS_STRENGTH_KEY,
)
from .modules import (
    SBS_IRREPS_METADATA_KEY,
    SBS_PER_ATOM_METADATA_KEY,
    SBSBiasEnergy,
    SBSNodeEmbed,
)

_LOADERS = ("ModelFromPackage", "ModelFromCheckpoint")


def parse_irreps(irreps, what: str = "sbs_irreps") -> str:
    """Validated, simplified e3nn irreps string (SBSInputError otherwise)."""
    try:
        ir = o3.Irreps(str(irreps)).simplify()
    except Exception as exc:
        raise SBSInputError(f"{what}={irreps!r} is not an e3nn irreps string (e.g. '1o', '1o+2e'): {exc}") from exc
    if ir.dim == 0:
        raise SBSInputError(f"{what}={irreps!r} is empty")
    return str(ir)


def _type_numbers(type_names: Sequence[str], type_numbers) -> List[int]:
    from ase.data import atomic_numbers

    if type_numbers is not None:
        if len(type_numbers) != len(type_names):
            raise SBSInputError(f"type_numbers {list(type_numbers)} must give one atomic number per type "
                                f"{list(type_names)}")
        return [int(z) for z in type_numbers]
    unknown = [t for t in type_names if t not in atomic_numbers]
    if unknown:
        raise SBSInputError(
            f"model types {unknown} are not chemical symbols: give the bias their atomic numbers with `type_numbers`"
        )
    return [atomic_numbers[t] for t in type_names]


def _build_inner(model, defaults: dict):
    """The wrapped model as a top-level NequIP ``GraphModel``."""
    if hasattr(model, "is_graph_model"):
        return model
    if not isinstance(model, Mapping) or "_target_" not in model:
        raise SBSInputError(
            "`model` of SBSBiasedModel must be a model config with a `_target_` (a NequIP model builder, "
            "nequip.model.ModelFromPackage or nequip.model.ModelFromCheckpoint) or a built NequIP model"
        )
    from hydra.utils import get_method

    cfg = dict(model)
    target = str(cfg.pop("_target_"))
    if not target.endswith(_LOADERS):
        for key, value in defaults.items():
            if value is not None:
                cfg.setdefault(key, value)
    try:
        builder = get_method(target)
    except Exception as exc:
        raise SBSInputError(f"cannot import the wrapped model's `_target_: {target}` ({exc})") from exc
    inner = builder(**cfg)
    if isinstance(inner, torch.nn.ModuleDict):  # ModelFromCheckpoint: {model name: GraphModel}
        if len(inner) != 1:
            raise SBSInputError(f"`_target_: {target}` holds several models {list(inner.keys())}: wrap one of them")
        inner = next(iter(inner.values()))
    if not hasattr(inner, "is_graph_model"):
        raise SBSInputError(f"`_target_: {target}` built a {type(inner).__name__}, not a single NequIP GraphModel")
    return inner


def SBSBiasedModel(model, sbs_irreps: str, sbs_object: Optional[Sequence[float]] = None, strength: float = 0.0,
                   cutoff: Optional[float] = None, n_radial: int = 4, bias_seed: int = 0,
                   type_numbers: Optional[Sequence[int]] = None, model_dtype: Optional[str] = None,
                   type_names: Optional[Sequence[str]] = None, seed: Optional[int] = None,
                   per_atom: bool = False) -> GraphModel:
    """Wrap a NequIP-framework model with the SBS bias E_sb = −λ ⟨b, D(x)⟩ (eV).

    E_total = E_model(x) + E_sb(x; b, λ); forces −∂E/∂x and stress (1/V) ∂E/∂ε of the
    whole sum come from the wrapped model's own autograd output, so the bias enters them
    exactly. D is :class:`ase_sbs.bias.BiasDescriptor` (irreps ``sbs_irreps``, the given
    ``cutoff``/``n_radial``/``bias_seed``) on the model's edges, so the energy equals
    ``E_model + ase_sbs.bias.evaluate_bias(...)`` with the same descriptor settings.

    Args:
        model: the wrapped model: a config dict with ``_target_`` (a model builder, whose
            missing ``seed``/``model_dtype``/``type_names`` are taken from this wrapper,
            ``nequip.model.ModelFromPackage`` or ``nequip.model.ModelFromCheckpoint``), or a
            built NequIP ``GraphModel``.
        sbs_irreps: e3nn irreps of b (e.g. ``1o``).
        sbs_object: default b, used when a frame carries no ``sbs_object`` field (zeros).
        strength: default λ in eV, used when a frame carries no ``sbs_strength`` field.
        cutoff: descriptor cutoff in Å (default min(5 Å, the model's r_max); must not
            exceed r_max: the bias sees only the model's edges).
        n_radial, bias_seed: descriptor settings (``ase_sbs.bias`` defaults: 4, 0).
        type_numbers: atomic numbers of the model's types (default: type names as symbols).
        model_dtype, type_names: if given, must match the wrapped model's (a clear error
            at build time instead of a dtype clash inside training).
        seed: passed to a wrapped builder that has none (the bias itself is fixed by
            ``bias_seed``).
        per_atom: per-atom objects b_i (supercells, translation breaking): every frame
            carries ``sbs_atom_object`` (n_atoms, dim(sbs_irreps)) and
            E_sb = −λ Σ_i ⟨b_i, D_i(x)⟩, equal to ``ase_sbs.bias.evaluate_bias`` with
            objects of shape (n_atoms, dim). No default object then (``sbs_object``
            must be None); ``strength`` stays the default λ.
    """
    sbs_irreps = parse_irreps(sbs_irreps)
    dim = o3.Irreps(sbs_irreps).dim
    if per_atom and sbs_object is not None:
        raise SBSInputError(
            "SBSBiasedModel(per_atom=True) takes its per-atom objects from the data (`sbs_atom_object`, one per "
            "atom): drop `sbs_object` and attach them with AttachSBS(source=arrays) or the calculator"
        )
    if sbs_object is not None and len(list(sbs_object)) != dim:
        raise SBSInputError(f"sbs_object has {len(list(sbs_object))} components but sbs_irreps {sbs_irreps} need {dim}")
    inner = _build_inner(model, {"seed": seed, "model_dtype": model_dtype, "type_names": type_names})
    metadata = dict(inner.metadata)
    inner_dtype = metadata["model_dtype"]
    if model_dtype is not None and str(model_dtype) != inner_dtype:
        raise SBSInputError(
            f"the wrapped model is {inner_dtype} but SBSBiasedModel has model_dtype={model_dtype}: "
            f"set model_dtype: {inner_dtype} (or drop it) — the bias is evaluated in the wrapped model's dtype"
        )
    inner_types = metadata["type_names"].split(" ")
    if type_names is not None and list(type_names) != inner_types:
        raise SBSInputError(f"type_names {list(type_names)} differ from the wrapped model's {inner_types}")
    r_max = float(metadata["r_max"])
    cutoff = min(DEFAULT_CUTOFF, r_max) if cutoff is None else float(cutoff)
    if cutoff > r_max + 1e-12:
        raise SBSInputError(f"bias cutoff {cutoff} Å exceeds the wrapped model's r_max {r_max} Å: the bias "
                            "uses the model's neighbour list, so choose cutoff <= r_max")
    core = inner.model
    if not (hasattr(core, "func") and hasattr(core, "do_derivatives")):
        raise SBSInputError(
            f"the wrapped model's top module is {type(core).__name__}; SBSBiasedModel needs NequIP's "
            "ForceStressOutput (forces and stress by autograd of the energy) to put the bias inside it"
        )
    numbers = _type_numbers(inner_types, type_numbers)
    # as NequIP's own builders: e3nn modules in plain Python (no TorchScript), so they trace for nequip-compile
    with conditional_torchscript_mode(False), torch_default_dtype(dtype_from_name(inner_dtype)):
        bias = SBSBiasEnergy(sbs_irreps, numbers, sbs_object, strength, cutoff, n_radial, bias_seed,
                             per_atom=bool(per_atom), irreps_in=core.func.irreps_out)
        energy = SequentialGraphNetwork({"model": core.func, "sbs_bias": bias})
        fso = ForceStressOutput(energy, do_derivatives=bool(core.do_derivatives))
        fields = dict(fso.irreps_in)
        fields.update({SBS_ATOM_OBJECT_KEY if per_atom else SBS_OBJECT_KEY: sbs_irreps, SBS_STRENGTH_KEY: "0e"})
        wrapped = GraphModel(
            model=fso,
            model_config={"model_dtype": inner_dtype, "type_names": inner_types, "r_max": r_max},
            model_input_fields=fields,
        )
    wrapped._metadata.update({k: v for k, v in inner._metadata.items() if k not in wrapped._metadata})
    wrapped._metadata[SBS_IRREPS_METADATA_KEY] = sbs_irreps
    if per_atom:
        wrapped._metadata[SBS_PER_ATOM_METADATA_KEY] = "1"
    return wrapped


class SBSGraphModel(GraphModel):
    """NequIP's GraphModel that also records ``sbs_irreps`` in its metadata (and so in
    compiled files), for calculators that must feed b."""

    def __init__(self, model, model_config=None, model_input_fields={}):
        super().__init__(model, model_config=model_config, model_input_fields=model_input_fields)
        if model_config is not None and "sbs_irreps" in model_config:
            self._metadata[SBS_IRREPS_METADATA_KEY] = parse_irreps(model_config["sbs_irreps"])


@model_builder(wrapper_class=SBSGraphModel)
def SBSNequIPGNNModel(
    sbs_irreps: str,
    r_max: float,
    type_names: Sequence[str],
    num_layers: int = 3,
    l_max: int = 1,
    parity: bool = True,
    num_features: Union[int, List[int]] = 32,
    type_embed_num_features: Optional[int] = None,
    radial_mlp_depth: int = 1,
    radial_mlp_width: int = 64,
    sbs_mix_multiplicity: int = 8,
    predict_displacements: bool = True,
    num_bessels: int = 8,
    bessel_trainable: bool = False,
    polynomial_cutoff_p: int = 6,
    avg_num_neighbors: Optional[Union[float, Dict[str, float]]] = 1.0,
    per_type_energy_scales: Optional[Union[float, Sequence[float]]] = None,
    per_type_energy_shifts: Optional[Union[float, Sequence[float]]] = None,
    per_type_energy_scales_trainable: bool = False,
    per_type_energy_shifts_trainable: bool = False,
    do_derivatives: bool = True,
) -> GraphModel:
    """NequIP GNN conditioned on a symmetry-breaking object b (Xie & Smidt's method).

    Arguments are :func:`nequip.model.NequIPGNNModel`'s (``seed``, ``model_dtype``,
    ``r_max``, ``type_names``, ``num_layers``, ``l_max``, ``parity``, ``num_features``,
    radial MLP, Bessel and per-type scale/shift settings) plus:

    Args:
        sbs_irreps: e3nn irreps of b, read per frame from ``sbs_object``.
        sbs_mix_multiplicity: channels of the (type embedding ⊗ b) features.
        predict_displacements: also output per-atom vectors u_i (``sbs_displacements``,
            1o, Å) read out from the last layer's vector features.

    Initial features h_i⁰ = [s_i ; W(s_i ⊗ b)] (:class:`SBSNodeEmbed`), then NequIP's
    interaction layers; E = Σ_i E_i (forces/stress by autograd). For g ∈ O(3):
    E(g·x, D(g) b) = E(x, b), F → g F, u → g u.
    """
    sbs_irreps = parse_irreps(sbs_irreps)
    if num_layers < 1:
        raise SBSInputError(f"num_layers must be >= 1, got {num_layers}")
    if isinstance(num_features, int):
        num_features = [num_features] * (l_max + 1)
    if len(num_features) != l_max + 1:
        raise SBSInputError(f"num_features needs l_max + 1 = {l_max + 1} entries, got {num_features}")
    if predict_displacements and l_max < 1:
        raise SBSInputError("predict_displacements needs vector features: use l_max >= 1")
    irreps_edge_sh = repr(o3.Irreps.spherical_harmonics(lmax=l_max))
    type_embed_num_features = type_embed_num_features or num_features[0]
    hidden = repr(o3.Irreps([
        (num_features[l], (l, p))
        for l in range(l_max + 1)
        for p in ((1, -1) if parity else ((1,) if l % 2 == 0 else (-1,)))
    ]))
    last = f"{num_features[0]}x0e" + (f"+{num_features[1]}x1o" if predict_displacements else "")
    hidden_list = [hidden] * (num_layers - 1) + [last]

    # b is a model input: declared on the first module so GraphModel passes it through
    type_embed = NodeTypeEmbed(type_names=type_names, num_features=type_embed_num_features,
                               irreps_in={SBS_OBJECT_KEY: sbs_irreps})
    sbs_embed = SBSNodeEmbed(sbs_irreps, sbs_mix_multiplicity, irreps_in=type_embed.irreps_out)
    spharm = SphericalHarmonicEdgeAttrs(irreps_edge_sh=irreps_edge_sh, irreps_in=sbs_embed.irreps_out)
    edge_norm = EdgeLengthNormalizer(r_max=r_max, type_names=type_names, irreps_in=spharm.irreps_out)
    bessel = BesselEdgeLengthEncoding(
        num_bessels=num_bessels, trainable=bessel_trainable, cutoff=PolynomialCutoff(polynomial_cutoff_p),
        edge_invariant_field=AtomicDataDict.EDGE_EMBEDDING_KEY, irreps_in=edge_norm.irreps_out,
    )
    factor = ApplyFactor(in_field=AtomicDataDict.EDGE_EMBEDDING_KEY, factor=(2 * math.pi) / (r_max * r_max),
                         irreps_in=bessel.irreps_out)
    modules = {"type_embed": type_embed, "sbs_embed": sbs_embed, "spharm": spharm, "edge_norm": edge_norm,
               "bessel_encode": bessel, "factor": factor}
    prev = factor.irreps_out
    for i in range(num_layers):
        layer = ConvNetLayer(
            irreps_in=prev,
            feature_irreps_hidden=hidden_list[i],
            convolution_kwargs={
                "radial_mlp_depth": radial_mlp_depth,
                "radial_mlp_width": radial_mlp_width,
                "use_sc": i != 0,
                "is_first_layer": i == 0,
                "avg_num_neighbors": avg_num_neighbors,
                "type_names": type_names,
            },
            resnet=False,
        )
        prev = layer.irreps_out
        modules[f"layer{i}_convnet"] = layer
    energy_readout = AtomwiseLinear(field=AtomicDataDict.NODE_FEATURES_KEY,
                                    out_field=AtomicDataDict.PER_ATOM_ENERGY_KEY,
                                    irreps_in=prev, irreps_out="1x0e")
    modules["per_atom_energy_readout"] = energy_readout
    prev = energy_readout.irreps_out
    if predict_displacements:
        disp = AtomwiseLinear(field=AtomicDataDict.NODE_FEATURES_KEY, out_field=SBS_DISPLACEMENTS_KEY,
                              irreps_in=prev, irreps_out="1x1o")
        modules["displacement_readout"] = disp
        prev = disp.irreps_out
    modules["per_type_energy_scale_shift"] = PerTypeScaleShift(
        type_names=type_names, field=AtomicDataDict.PER_ATOM_ENERGY_KEY, out_field=AtomicDataDict.PER_ATOM_ENERGY_KEY,
        scales=per_type_energy_scales, shifts=per_type_energy_shifts, scales_trainable=per_type_energy_scales_trainable,
        shifts_trainable=per_type_energy_shifts_trainable, irreps_in=prev,
    )
    from nequip.model.energy_modules import _append_energy_modules

    energy_model = _append_energy_modules(SequentialGraphNetwork(modules), type_names=type_names)
    return ForceStressOutput(energy_model, do_derivatives)
