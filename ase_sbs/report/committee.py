"""A committee of potentials for people (:mod:`ase_sbs.explore.committee`): the table of
each potential's ground state and the ΔE matrix, one line per parent of a screen, and
the plot of every parent's ground-state ΔE, one marker per potential. Energies are
printed in meV per formula unit."""

from __future__ import annotations

from ..core.files import save_figure
from .tables import format_table

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def _meV(x) -> str:
    return "-" if x is None else f"{1000 * x:+.2f}"


def describe_committee(committee, title: str | None = None) -> str:
    """The committee of one parent: each potential's compared structure (its ground
    state, or what stands for it: ``status``) with its ΔE against its own relaxed
    parent; the matrix ΔE[i][j] of member i's structure relaxed within its group under
    potential j, against j's relaxed parent (meV per formula unit; the diagonal is j's
    own ground state), with the group each relaxation ended in where it changed; and
    the verdict with its reasons."""
    members = committee.members
    lines = [title or f"committee     {', '.join(committee.potentials)}", ""]
    lines.append(format_table(
        ["potential", "ground state", "status", "ΔE meV/f.u.", "parent E eV/f.u."],
        [[m.potential, m.label or (f"error: {m.error}" if m.error else "-"), m.status or "-",
          _meV(m.delta_energy_per_formula_unit_eV), "-" if m.parent_energy_per_formula_unit_eV is None
          else f"{m.parent_energy_per_formula_unit_eV:.4f}"] for m in members]))
    ended = {(e.structure_of, e.under): e for e in committee.evaluations}
    rows = []
    for i, m in enumerate(members):
        row = [f"{m.potential}: {m.label or '-'}"]
        for j, n in enumerate(members):
            cell = _meV(committee.matrix[i][j])
            e = ended.get((m.potential, n.potential))
            if e is not None and e.error is None and e.spacegroup_number != m.spacegroup_number:
                cell += f" -> {e.label}"
            if e is not None and e.error is None and not e.converged:
                cell += " (not converged)"
            row.append(cell)
        rows.append(row)
    lines += ["", "ΔE (meV/f.u.) of each ground state (rows) relaxed within its group under each potential "
              "(columns), against that potential's relaxed parent",
              format_table(["structure of \\ under", *committee.potentials], rows), ""]
    if committee.agree:
        lines.append(f"agree: {members[0].label} under every potential, no ground state more than "
                     f"{1000 * committee.tolerance:.2f} meV/f.u. from another's under any of them")
    else:
        lines.append("disagree:" if committee.reasons else "nothing to compare")
        lines += [f"  {r}" for r in committee.reasons]
    return "\n".join(lines)


def describe_committee_outcome(outcome) -> str:
    """``Cu_bcc  Cu  committee emt: Fm-3m (225) -32.68, demo-emt: Fm-3m (225) -49.02 meV/f.u.  agree  [row 9]``
    for a :class:`~ase_sbs.screen.committee.CommitteeOutcome`."""
    found = ", ".join(f"{p}: {outcome.groups.get(p) or '-'} {_meV(outcome.dE.get(p))}" for p in outcome.potentials)
    verdict = "agree" if outcome.agree else "DISAGREE: " + "; ".join(outcome.reasons)
    return f"{outcome.name}  {outcome.formula}  committee {found} meV/f.u.  {verdict}  [row {outcome.id}]"


def committee_record(name: str, data: dict) -> dict:
    """What the plot takes of one parent's committee JSON
    (:meth:`~ase_sbs.explore.committee.Committee.as_dict`): ``name``, ``potentials``,
    ``agree``, ``dE`` (each potential's ground-state ΔE, eV per formula unit) and ``sg``
    (its space-group number)."""
    members = data["members"]
    return {"name": name, "potentials": list(data["potentials"]), "agree": bool(data["agree"]),
            "dE": {m["potential"]: m["delta_energy_per_formula_unit_eV"] for m in members},
            "sg": {m["potential"]: m["spacegroup_number"] for m in members}}


def plot_committees(records: list[dict], path: str) -> None:
    """PNG: per parent (x), each potential's ground-state ΔE against its own relaxed
    parent (meV per formula unit, symmetric-log axis linear within ±10), one marker
    per potential, labelled by its space-group number; parents where the potentials
    disagree are named in red. ``records``: :func:`committee_record` of each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    potentials = []
    for r in records:
        potentials += [p for p in r["potentials"] if p not in potentials]
    fig, ax = plt.subplots(figsize=(max(5.5, 0.9 * len(records) + 2.5), 4.2))
    width = 0.6 / max(len(potentials), 1)
    for k, pot in enumerate(potentials):
        xs, ys, sgs = [], [], []
        for x, r in enumerate(records):
            dE = r["dE"].get(pot)
            if dE is not None:
                xs.append(x + (k - (len(potentials) - 1) / 2) * width)
                ys.append(1000 * dE)
                sgs.append(r["sg"].get(pot))
        ax.scatter(xs, ys, marker=MARKERS[k % len(MARKERS)], s=40, label=pot, zorder=3)
        for x, y, sg in zip(xs, ys, sgs):
            if sg is not None:
                ax.annotate(str(sg), (x, y), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=6)
    ax.set_xticks(range(len(records)), [r["name"] for r in records], rotation=30, ha="right", fontsize=8)
    for tick, r in zip(ax.get_xticklabels(), records):
        if not r["agree"]:
            tick.set_color("tab:red")
    ax.set_yscale("symlog", linthresh=10)
    ax.axhline(0, color="0.8", linewidth=0.8, zorder=0)
    ax.set_ylabel("ground-state ΔE vs own parent (meV/f.u.)", fontsize=9)
    ax.set_title("each potential's ground state (number: space group; red: they disagree)", fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    ax.margins(x=0.05, y=0.15)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
