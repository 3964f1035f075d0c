"""Analyses as text: symmetry-mode decompositions, symmetry levels, equivariance errors."""

from __future__ import annotations

from .tables import format_table


def describe_modes(dec, all_channels: bool = False) -> str:
    """Terminal table of a decomposition."""
    m = dec.match
    crystal = m.parent.periodic
    lines = [
        f"parent        {m.parent.name()}",
        f"child         {dec.child_symmetry}",
        *([f"cells         {m.n_cells} parent cell(s) in the child's cell, "
           f"H = {m.supercell.tolist()}"] if crystal else []),
        f"total         {dec.total_A:.6f} Å{' per parent cell' if crystal else ''}; "
        f"symmetry-breaking part {dec.breaking_A:.6f} Å",
        f"isotropy      {dec.isotropy_name} ({dec.isotropy_point_group}) = stabilizer of the k = 0 distortion",
        *([f"strain length ℓ = {m.strain_length:.4f} Å (strain counts as ℓ·‖ε‖)"] if crystal else []),
        "",
    ]
    rows = []
    for x in dec.modes:
        if not all_channels and x.amplitude_A <= dec.threshold_A:
            continue
        direction = ("[" + " ".join(f"{round(v, 4) + 0.0:+.4f}" for v in x.direction) + "]") if x.direction else "-"
        rows.append([x.label, f"{x.amplitude_A:.6f}", f"{x.displacement_A:.6f}", f"{x.strain:.6f}",
                     x.o3_irreps, direction, x.isotropy_name])
    lines.append(format_table(["channel", "amplitude (Å)", "displacement (Å)", "strain", "O(3)",
                               "order-parameter direction", "isotropy subgroup"], rows))
    if dec.beyond_modes:
        lines += ["", f"beyond k=0 in the channels of {m.parent.name().split(',')[0]} modulo the child's lattice "
                  f"(amplitudes per parent cell; isotropy of the whole distortion {dec.supercell_isotropy_name}):"]
        rows = [[x.label, x.kstar or "-", f"{x.amplitude_A:.6f}", x.isotropy_name or "-",
                 ", ".join(x.channel_isotropy_subgroups) if x.channel_isotropy_subgroups else "-"]
                for x in dec.beyond_modes if all_channels or x.amplitude_A > dec.threshold_A]
        lines.append(format_table(["channel", "k-star", "amplitude (Å)", "isotropy subgroup",
                                   "channel's isotropy subgroups"], rows))
    if dec.beyond_note:
        lines += ["", dec.beyond_note]
    return "\n".join(lines)


def summary_of_dict(data: dict, threshold: float = 1e-4) -> str:
    """One line from :meth:`ModeDecomposition.as_dict`: the channels above ``threshold``
    (Å), the beyond-k=0 part by the supercell's channels when it was split, largest first."""
    if "error" in data:
        return f"not decomposed ({data['error']})"
    split = data.get("beyond_k0_modes") or []
    entries = [x for x in data["modes"] if not (split and x["label"] == "beyond k=0")] + split
    out = []
    for x in sorted(entries, key=lambda x: -x["amplitude_A"]):
        if x["amplitude_A"] <= threshold:
            continue
        s = f"{x['label']} {x['amplitude_A']:.4f} Å"
        if x["direction"] and x["o3_irreps"] in ("1o", "1e"):
            s += " [" + " ".join(f"{round(v, 3) + 0.0:+.3f}" for v in x["direction"]) + "]"
        out.append(s)
    whole = data.get("supercell_isotropy_subgroup")
    iso = f"; isotropy {data['isotropy_subgroup']}" + (f" at k = 0, {whole} in the supercell" if whole else "")
    return (", ".join(out) or "none") + iso


def describe_levels(res, all_conjugates: bool = False) -> str:
    """Table of the levels (by default only the nearest subgroup of each type)."""
    rows = [[lv.name + ("  (own, at symprec)" if lv.own else ""), lv.point_group, lv.order,
             f"{lv.distance_A:.6f}", f"{lv.displacement_A:.6f}", f"{lv.strain:.6f}"]
            for lv in res.levels if all_conjugates or lv.nearest]
    head = [f"structure     {res.formula}", f"reference     {res.reference}",
            f"top group     {res.top.name()}",
            f"distance      per parent cell: sqrt(|(1-P_G)u|^2/n + l^2 |(1-P_G)eps|^2), n = {res.n_cells}, "
            f"l = {res.strain_length_A:.4f} Å", ""]
    return "\n".join(head) + format_table(
        ["group", "point group", "order", "distance (Å)", "displacement (Å)", "strain"], rows)


def describe_report(report) -> str:
    """Equivariance errors of a potential, one row per kind of symmetry."""
    rows = [[r.kind, r.trials, f"{r.energy_eV:.2e}", f"{r.force_eV_A:.2e}", f"{r.stress_eV_A3:.2e}",
             "FLAGGED" if r.largest > report.tolerance else "ok"] for r in report.rows]
    return format_table(["symmetry", "trials", "|ΔE| (eV)", "|ΔF| (eV/Å)", "|Δσ| (eV/Å³)",
                         f"verdict (tol {report.tolerance:g})"], rows)
