"""The instability scan and the supercell chosen from it, as text tables and a picture:
the lowest curvature along the high-symmetry path, drawn like a phonon dispersion, the
unstable region shaded."""

from __future__ import annotations

import numpy as np

from ..core.files import save_figure
from .tables import format_table


def _frequency(channel) -> str:
    if channel.frequencies_THz is None:
        return "- (strain)"
    nu = f"{channel.frequencies_THz[0]:.3g}"
    return nu + (" (mixed)" if channel.species == "mixed" else f" ({channel.species})")


def describe_scan(result, every_star: bool = False) -> str:
    """The unstable stars of a scan (every star with ``every_star``), each unstable channel
    with its curvatures and lowest frequency (THz, negative: imaginary; ``mixed``: it moves
    several species)."""
    head = (f"parent        {result.parent_formula} {result.parent_spacegroup} ({result.lattice}), "
            f"a = {_length(result.cell):.4f} Å, potential {result.potential or '?'}")
    grid = (f"grid          {result.grid}×{result.grid}×{result.grid}: {sum(s.on_grid for s in result.stars)} stars; "
            f"{len(result.selected)} with the special points; {len(result.stars)} with the path "
            f"({result.path_divisions} steps per line)")
    cost = f"cost          {result.evaluations} evaluations of displaced structures, {result.seconds:.1f} s"
    rows = []
    minima = set(result.grid_minima)
    for s in sorted(result.stars if every_star else result.unstable_stars, key=lambda s: s.lowest):
        channels = s.channels if every_star else s.unstable_channels
        for i, c in enumerate(sorted(channels, key=lambda c: c.lowest)):
            first = i == 0
            rows.append([s.name if first else "", f"{s.natoms}" if first else "", c.label,
                         ", ".join(f"{x:.4g}" for x in c.curvatures), _frequency(c),
                         _where(s, minima) if first else ""])
    if not rows:
        table = "no unstable star: every channel's curvature is above -1e-3 eV/Å² on the grid"
    else:
        table = format_table(["star", "atoms", "channel", "curvatures (eV/Å²)", "lowest ν (THz)", "note"], rows)
    title = "every star" if every_star else "unstable stars (most unstable first; atoms: the cell that holds one arm)"
    return "\n".join([head, grid, cost, "", title, table])


def _where(star, minima) -> str:
    """``minimum``: a grid star no higher than its nearest grid points; ``path``: off the grid."""
    return "minimum" if star.name in minima else ("" if star.on_grid or star.special else "path")


def _length(cell) -> float:
    return float(np.linalg.norm(np.asarray(cell)[0]))


def describe_choice(choice) -> str:
    """Why a supercell was chosen (:func:`~ase_sbs.setting.choice.choose_supercell`)."""
    if not choice.stars:
        return "supercell     [[1, 0, 0], [0, 1, 0], [0, 0, 1]]: no unstable star, the primitive cell"
    stars = ", ".join(f"{n} ({x:.3g} eV/Å²)" for n, x in zip(choice.stars, choice.lowest))
    lines = [f"unstable      {stars}",
             f"supercell     {choice.matrix.tolist()} of the primitive parent: {choice.cells} cells, "
             f"{choice.natoms} atoms"]
    if choice.every_arm:
        lines.append(f"why           every arm of {', '.join(choice.every_arm)}: each of their isotropy subgroups and "
                     "couplings is reachable")
    for name in choice.one_arm:
        lines.append(f"              one arm (k, -k) of {name}: the cell of its single-arm isotropy subgroups; every "
                     f"arm would need {choice.all_arm_cells.get(name, '?')} cells, too large for the decomposition")
    return "\n".join(lines)


def plot_scan(result, path: str) -> None:
    """The lowest curvature of each path point (line), every channel's lowest curvature
    (dots), zero, and the unstable region shaded; special points as ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    points = result.path
    if not points:
        raise ValueError("the scan has no path to draw (path=False)")
    x = np.array([p.x for p in points])
    low = np.array([result.stars[p.star].lowest for p in points])
    for piece in sorted({p.piece for p in points}):
        sel = np.array([p.piece == piece for p in points])
        ax.plot(x[sel], low[sel], "-o", color="C0", ms=3.5, lw=1.6, label="lowest curvature" if piece == 0 else None)
        ax.fill_between(x[sel], low[sel], 0, where=low[sel] < 0, interpolate=True, color="C3", alpha=0.25, lw=0,
                        label="unstable" if piece == 0 else None)
    for p in points:
        ys = [c.lowest for c in result.stars[p.star].channels]
        ax.plot([p.x] * len(ys), ys, ".", color="0.6", ms=2.5, zorder=0)
    ax.axhline(0, color="k", lw=0.8)
    ticks = [(p.x, p.label) for p in points if p.label]
    ax.set_xticks([t for t, _ in ticks], [lab for _, lab in ticks])
    for t, _ in ticks:
        ax.axvline(t, color="0.85", lw=0.8, zorder=0)
    ax.set_xlim(x.min(), x.max())
    bottom = min(float(low.min()) * 1.15, -0.1)
    ax.set_ylim(bottom, max(-0.5 * bottom, 1.0))  # the unstable part in full, the stable channels above it in part
    ax.set_ylabel("curvature (eV/Å² per unit displacement)")
    ax.set_title(f"{result.parent_formula} {result.parent_spacegroup}, {result.potential}: "
                 f"lowest curvature along the path", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, what="the scan's picture")
    plt.close(fig)
