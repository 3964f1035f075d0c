"""An exploration for people and files: the terminal summary, the energy-level plot,
and the output directory (JSON, one structure per phase and variant, the plot)."""

from __future__ import annotations

import os

from ..core.files import save_figure, write_json, write_structure
from ..core.structure import formula
from .analysis import summary_of_dict
from .tables import format_table
from .tree import describe_tree, plot_tree

MEANING = {
    "merged": "reached a phase found before and stopped there (that phase lists it)",
    "returned": "returned to the parent: stable in this channel",
    "unconverged": "did not converge in the step budget (not a phase)",
    "bias_inactive": "the object cannot push along any distortion here",
}


def describe_channels(channels) -> str:
    """Channels with their curvature at the parent, most unstable first."""
    rows = []
    for c in sorted(channels, key=lambda c: c.min_curvature if c.curvature else 0.0):
        curv = ", ".join(f"{x:+.3f}" for x in c.curvature) if c.curvature else "-"
        rows.append([c.label, c.dimension, c.multiplicity, "+".join(c.sources), curv,
                     "UNSTABLE" if c.unstable else ""])
    return format_table(["channel", "dim", "copies", "from", "curvature (eV/Å²)", ""], rows)


def describe_exploration(ex) -> str:
    """Terminal summary of an :class:`~ase_sbs.explore.results.Exploration`."""
    p = ex.parent
    supercell = ex.supercell is not None
    lines = [
        f"parent        {formula(p.atoms)} {p.name}, {p.natoms} atoms, "
        f"E = {p.energy_per_atom:.6f} eV/atom  [{ex.potential}, mode {ex.settings.mode}, cell {ex.settings.cell}, "
        f"{ex.runner} runner]",
    ]
    if supercell:
        lines.append(f"supercell     {ex.supercell} of the primitive parent: |G| = {ex.group_order} "
                     "(space group / supercell translations)" + (f", k = {ex.kpoint}" if ex.kpoint else ""))
    if ex.reused:
        lines.append(f"resumed       {ex.reused} finished relaxation(s) reused from the output directory")
    if ex.channels:
        lines += ["", "channels (curvature at the parent, eV/Å² per unit displacement of the cell; < 0: unstable)",
                  describe_channels(ex.channels)]
    if supercell and ex.targets:
        lines += ["", "targets (maximal isotropy subgroups of the selected channels)",
                  format_table(["target", "channel", "[G:K]", "cell x"],
                               [[t.name, t.channel or "(coupled)", t.index, t.cell_multiplication]
                                for t in ex.targets])]
    lines.append("")
    rows = []
    for ph in ex.phases:
        row = [ph.name, ph.point_group, f"{1000 * ph.delta_energy_per_atom_eV:+.2f}",
               f"{1000 * ph.delta_energy_per_formula_unit_eV:+.2f}", ph.n_variants, "yes" if ph.spontaneous else "no",
               ph.irreps, ", ".join(ph.targets)]
        if supercell:
            row.insert(1, f"x{ph.cell_multiplication}")
        row += [" ".join(f"{x:.3f}" for x in ph.lattice[:3]) if ph.lattice else "-", f"{ph.max_displacement_A:.3f}"]
        rows.append(row)
    if rows:
        headers = ["phase", "PG", "ΔE meV/atom", "ΔE meV/f.u.", "variants", "spontaneous", "irreps", "from targets",
                   "a b c (Å)", "max disp (Å)"]
        if supercell:
            headers.insert(1, "cell")
        lines += ["phases", format_table(headers, rows)]
        decomposed = [(ph.name, ph.modes) for ph in ex.phases if ph.modes]
        if decomposed:
            lines += ["", "symmetry modes against the parent (amplitude, order-parameter direction; isotropy subgroup)"]
            lines += [f"  {name}: {summary_of_dict(m)}" for name, m in decomposed]
    else:
        lines.append("phases        none: no relaxation left the parent's symmetry")
    other = [r for r in ex.relaxations if r.status not in ("broken", "merged")]
    if other:
        rows = []
        for r in other:
            note = MEANING[r.status] + (f"; under the field it was {r.field_spacegroup}" if r.field_spacegroup else "")
            rows.append([r.target, f"{'-' if r.sign < 0 else '+'}b{r.member}", r.irreps, r.status, note])
        lines += ["", "channels that did not break",
                  format_table(["target", "object", "irreps", "status", "meaning"], rows)]
    if ex.settings.mode == "field":
        induced = [r for r in ex.relaxations if r.field_spacegroup]
        if induced:
            lines += ["", "reached under the field (λ at its largest) -> after release",
                      format_table(["target", "under field", "after release", "survives"],
                                   [[r.target, r.field_spacegroup, r.spacegroup_symbol or r.point_group,
                                     "yes" if r.status == "broken" else "no"] for r in induced])]
    lines.append("")
    verdict, reasons = ex.verdict, ex.verdict_reasons
    if verdict == "broken":
        lines.append(f"{sum(p.spontaneous for p in ex.phases)} phase(s) below the parent")
    elif verdict == "stable":
        lines.append("the parent is stable in every channel explored")
    else:
        lines.append("inconclusive: no phase below the parent was found, but the evidence does not show it stable")
    lines += [f"  {r}" for r in reasons]
    if ex.tree is not None:
        lines += ["", describe_tree(ex.tree, supercell)]
    return "\n".join(lines)


def plot_energies(ex, path: str) -> None:
    """PNG: ΔE per formula unit of every phase against the parent (0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = ex.parent
    names = [p.spacegroup_symbol or p.point_group] + [ph.name for ph in ex.phases]
    values = [0.0] + [1000 * ph.delta_energy_per_formula_unit_eV for ph in ex.phases]
    colors = ["0.5"] + ["tab:blue" if ph.spontaneous else "tab:orange" for ph in ex.phases]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(names) + 1.5), 3.6))
    for x, (v, c) in enumerate(zip(values, colors)):
        ax.hlines(v, x - 0.35, x + 0.35, color=c, linewidth=3)
        ax.annotate(f"{v:+.1f}", (x, v), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("ΔE (meV per formula unit)")
    ax.set_title(f"{formula(p.atoms)}: phases vs parent [{ex.potential}]")
    ax.axhline(0, color="0.8", linewidth=0.8, zorder=0)
    ax.margins(x=0.08, y=0.18)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write_exploration(ex, out: str) -> dict:
    """Write explore.json, one structure file per phase and variant, and energies.png;
    with a cascade also one structure per tree node (``tree/``) and ``phase_tree.png``.

    Returns the JSON dictionary (with ``structure_file`` paths relative to ``out``).
    """
    os.makedirs(os.path.join(out, "phases"), exist_ok=True)
    for i, ph in enumerate(ex.phases):
        stem = f"{i:02d}_{''.join(c if c.isalnum() else '_' for c in ph.name).strip('_')}"
        for j, v in enumerate(ph.variants or [ph.atoms]):
            rel = os.path.join("phases", f"{stem}_variant{j:02d}.extxyz")
            write_structure(v, os.path.join(out, rel))
            if j == 0:
                ph.structure_file = rel
    data = ex.as_dict()
    write_json(data, os.path.join(out, "explore.json"))
    plot_energies(ex, os.path.join(out, "energies.png"))
    if ex.tree is not None:
        os.makedirs(os.path.join(out, "tree"), exist_ok=True)
        for node in ex.tree.nodes[1:]:
            stem = f"node{node.id:02d}_{''.join(c if c.isalnum() else '_' for c in node.name).strip('_')}"
            write_structure(node.atoms, os.path.join(out, "tree", stem + ".extxyz"))
        plot_tree(ex.tree, f"{formula(ex.parent.atoms)}: phase tree [{ex.potential}]",
                  os.path.join(out, "phase_tree.png"))
    return data
