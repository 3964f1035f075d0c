"""The perovskite screen against experiment: a Markdown table and a ΔE plot.

    python examples/perovskite_table.py perovskites.db [perovskites.png]

reads the parent and phase rows that ``ase-sbs screen examples/perovskites ...`` wrote
and prints, per material, the ground state the screen predicts (the lowest local
minimum of its cascade; when none of them is, "below" the lowest phase found, which
then never counts as agreeing with experiment, whatever its group), its
ΔE per formula unit against the relaxed cubic parent, the experimental low-temperature
space group, and the energy of the experimental group when the screen found a phase of
it. The plot draws both energies per material.

A committee screen (several potentials in one database, e.g. ``ase-sbs screen
examples/perovskites --calc 7net-0,7net-l3i5,7net-mf-0:R2SCAN,chgnet --supercell 0 1 1 1
0 1 1 1 0 --cascade --workers 2 --db committee.db``) gets one column per potential
instead: each potential's predicted ground state and its ΔE, a last row with the count
each gets right, and the committee's verdict per material (its ``kind=committee`` row:
whether the potentials agree, and the largest ΔE difference between a potential's own
ground state and another's under it); the plot is then the committee plot, one marker
per potential (``ase_sbs.report.committee.plot_committees``).
"""

import sys

import numpy as np
from ase.db import connect

from ase_sbs.screen.summary import ground_state, lowest_phase

EXPERIMENT = {  # formula: (space group number, symbol, source)
    "BaTiO3": (160, "R3m", "Kwei et al., J. Phys. Chem. 97, 2368 (1993)"),
    "KNbO3": (160, "R3m", "Hewat, J. Phys. C 6, 2559 (1973)"),
    "PbTiO3": (99, "P4mm", "Glazer & Mabud, Acta Cryst. B 34, 1065 (1978)"),
    "SrTiO3": (140, "I4/mcm", "Unoki & Sakudo, J. Phys. Soc. Jpn. 23, 546 (1967)"),
    "LaAlO3": (167, "R-3c", "Geller & Bala, Acta Cryst. 9, 1019 (1956)"),
    "SrZrO3": (62, "Pnma", "Kennedy, Howard & Chakoumakos, Phys. Rev. B 59, 4023 (1999)"),
    "CaZrO3": (62, "Pnma", "Koopmans, van de Velde & Gellings, Acta Cryst. C 39, 1323 (1983)"),
    "NaTaO3": (62, "Pnma", "Kennedy, Prodjosantoso & Howard, J. Phys.: Condens. Matter 11, 6319 (1999)"),
    "CaSnO3": (62, "Pnma", "Vegas et al., Acta Cryst. B 42, 167 (1986)"),
    "BiFeO3": (161, "R3c", "Kubel & Schmid, Acta Cryst. B 46, 698 (1990)"),
    "LiNbO3": (161, "R3c", "Abrahams, Reddy & Bernstein, J. Phys. Chem. Solids 27, 997 (1966)"),
    "KTaO3": (221, "Pm-3m", "Samara & Morosin, Phys. Rev. B 8, 1256 (1973)"),
    "BaZrO3": (221, "Pm-3m", "Akbarzadeh et al., Phys. Rev. B 72, 205104 (2005)"),
}


def potentials(path: str) -> list[str]:
    """The potentials of the database's parent rows, in the order they first appear."""
    out = []
    for row in connect(path).select(kind="parent", sort="id"):
        if row.get("potential") not in out:
            out.append(row.get("potential"))
    return out


def rows(path: str, potential: str | None = None) -> list[dict]:
    """One record per material in EXPERIMENT order: prediction, experiment, energies
    (meV/f.u.); of one potential's rows when given."""
    db = connect(path)
    out = []
    for name, (exp_sg, exp_symbol, source) in EXPERIMENT.items():
        found = list(db.select(kind="parent", name=name, **({} if potential is None else {"potential": potential})))
        if not found:
            continue
        parent = found[-1]
        record = {"name": name, "experiment": f"{exp_symbol} ({exp_sg})", "exp_sg": exp_sg, "source": source}
        if parent.get("error"):
            out.append({**record, "error": parent.error})
            continue
        sg, label, dE, status = ground_state(parent.data)
        below = sg is None  # the lowest phase found is unstable: the ground state lies below it
        if below:
            sg, label, dE = lowest_phase(parent.data)
            label = f"below {label}"
        phases = list(db.select(kind="phase", parent_id=parent.id))
        same = [r.dE for r in phases if r.sg == exp_sg]
        exp_dE = 0.0 if exp_sg == parent.parent_sg else (min(same) if same else None)
        tree = parent.data.get("tree")
        matrix = parent.data.get("supercell")
        record["setting_atoms"] = len(parent.toatoms()) * (round(abs(np.linalg.det(matrix))) if matrix else 1)
        checked = status in ("ground state", "parent") or bool(tree and tree.get("ground_state") is not None)
        out.append({**record, "predicted": label, "sg": sg, "dE": 1000 * dE, "local_minimum": checked,
                    "exp_dE": None if exp_dE is None else 1000 * exp_dE, "agrees": sg == exp_sg and not below})
    return out


def markdown(records: list[dict], potential: str = "7net-0") -> str:
    lines = [f"| ABO3 | experiment (low T) | {potential} ground state | ΔE (meV/f.u.) | local minimum "
             "| experimental group found at (meV/f.u.) | agrees |", "|---|---|---|---|---|---|---|"]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['name']} | {r['experiment']} | error: {r['error']} | | | | |")
            continue
        exp = "not reached" if r["exp_dE"] is None else f"{r['exp_dE']:+.1f}"
        lines.append(f"| {r['name']} | {r['experiment']} | {r['predicted']} | {r['dE']:+.1f} | "
                     f"{'yes' if r['local_minimum'] else 'not checked'} | {exp} | {'yes' if r['agrees'] else 'no'} |")
    return "\n".join(lines)


def committee_markdown(path: str, names: list[str]) -> str:
    """A column per potential (its ground state and ΔE in meV/f.u., in bold where it is
    the experimental group), the committee's verdict per material, and the count each
    potential gets right."""
    by_potential = {p: {r["name"]: r for r in rows(path, p)} for p in names}
    verdicts = {row.name: row for row in connect(path).select(kind="committee", sort="id")}
    lines = ["| ABO3 | experiment (low T) | " + " | ".join(names) + " | potentials agree | spread (meV/f.u.) |",
             "|---|---|" + "---|" * len(names) + "---|---|"]
    right = dict.fromkeys(names, 0)
    for name, (exp_sg, exp_symbol, _) in EXPERIMENT.items():
        cells = []
        for p in names:
            r = by_potential[p].get(name)
            if r is None:
                cells.append("")
            elif "error" in r:
                cells.append("error")
            else:
                right[p] += r["agrees"]
                text = f"{r['predicted']}, {r['dE']:+.1f}"
                cells.append(f"**{text}**" if r["agrees"] else text)
        if not any(cells):
            continue
        c = verdicts.get(name)
        agree = "" if c is None else "yes" if c.agree else "no"
        spread = "" if c is None or c.get("spread") is None else f"{1000 * c.spread:.1f}"
        lines.append(f"| {name} | {exp_symbol} ({exp_sg}) | " + " | ".join(cells) + f" | {agree} | {spread} |")
    n = sum(any(name in by_potential[p] for p in names) for name in EXPERIMENT)
    lines.append("| right | | " + " | ".join(f"{right[p]}/{n}" for p in names) + " | | |")
    return "\n".join(lines)


def plot(records: list[dict], path: str) -> None:
    """Bars: the predicted ground state's ΔE per material (symmetric-log axis, linear within
    ±10 meV/f.u.), green where it is the experimental group, orange where the experimental
    group was found higher, grey where this setting cannot hold it; a black tick marks the
    experimental group's own energy when it was found and is not the prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    records = [r for r in records if "error" not in r]
    x = list(range(len(records)))
    colour = ["tab:green" if r["agrees"] else "tab:orange" if r["exp_dE"] is not None else "0.6" for r in records]
    fig, ax = plt.subplots(figsize=(11, 4.8))
    ax.bar(x, [min(r["dE"], -0.05) for r in records], color=colour)
    found = [(i, r["exp_dE"]) for i, r in enumerate(records) if r["exp_dE"] is not None and not r["agrees"]]
    if found:
        ax.scatter(*zip(*found), marker="_", s=400, linewidths=2, color="k", zorder=3)
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylim(top=1)
    def symbol(label: str) -> str:
        return label.split(" (")[0]

    ax.set_xticks(x, [f"{r['name']}\nexp. {symbol(r['experiment'])}\n→ {symbol(r['predicted'])}" for r in records],
                  fontsize=8)
    for i, r in enumerate(records):
        if r["dE"] == 0.0:
            ax.annotate("cubic", (i, 0), textcoords="offset points", xytext=(0, -4), ha="center", va="top",
                        fontsize=8, color="tab:green")
    ax.set_ylabel("ΔE against the cubic parent (meV/f.u.)")
    sizes = sorted({r["setting_atoms"] for r in records if "setting_atoms" in r})
    setting = " / ".join(f"{n}-atom" for n in sizes) + " setting" + ("s" if len(sizes) > 1 else "")
    ax.set_title(f"Cubic perovskites under SevenNet-0: the {setting} (Γ ⊕ R at 10 atoms, Γ ⊕ X ⊕ M ⊕ R at 40), "
                 "cascade", fontsize=10)
    ax.legend(handles=[Patch(color="tab:green", label="prediction = experimental group"),
                       Patch(color="tab:orange", label="experimental group found, higher"),
                       Patch(color="0.6", label="experimental group beyond this setting (Pnma)"),
                       plt.Line2D([], [], color="k", marker="_", ls="", ms=14, mew=2,
                                  label="the experimental group's ΔE, as found")],
              fontsize=7, loc="lower left")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=150)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.strip().splitlines()[2].strip())
    names = potentials(sys.argv[1])
    if len(names) > 1:
        from ase_sbs.report.committee import plot_committees
        from ase_sbs.screen.committee import committee_records

        print(committee_markdown(sys.argv[1], names))
        print()
        for name, (_, _, source) in EXPERIMENT.items():
            print(f"{name}: {source}")
        if len(sys.argv) == 3:
            plot_committees(committee_records(connect(sys.argv[1])), sys.argv[2])
        sys.exit(0)
    records = rows(sys.argv[1])
    print(markdown(records, names[0] if names and names[0] else "7net-0"))
    print()
    for r in records:
        print(f"{r['name']}: {r['source']}")
    if len(sys.argv) == 3:
        plot(records, sys.argv[2])
