"""A cascade's tree of phases as text and as a group–subgroup diagram (energy up)."""

from __future__ import annotations


from ..core.files import save_figure
from .analysis import summary_of_dict


def _check(node) -> str:
    """The curvature check of a node: its unstable channels, or the lowest curvature."""
    if not node.curvatures:
        return "not checked (above the lowest local minimum)"
    if node.unstable:
        worst = sorted(((min(node.curvatures[c]), c) for c in node.unstable))
        return "unstable: " + ", ".join(f"{c} ({k:+.3f})" for k, c in worst)
    k, c = min((min(v), c) for c, v in node.curvatures.items())
    return f"local minimum: {len(node.curvatures)} channels, lowest curvature {k:+.3f} ({c})"


def describe_tree(tree, supercell: bool = False) -> str:
    """Indented tree: each node's group, cell, ΔE per formula unit against the root,
    variants, the route(s) that reached it and its curvature check (eV/Å²)."""
    nodes = tree.nodes
    lines = ["cascade (ΔE per formula unit against the root; curvatures of each phase's own channels, eV/Å²)"]

    def walk(node, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        cell = f"  x{node.cell_multiplication}" if supercell else ""
        others = [r for r in node.routes[1:]]
        also = ("  (also from " + ", ".join(nodes[r["from"]].name for r in others) + ")") if others else ""
        via = "" if top else f"  via {node.routes[0]['target']}"
        lines.append(f"{prefix}{branch}{node.name}{cell}  {1000 * node.delta_energy_per_formula_unit_eV:+.2f} meV/f.u."
                     f"  {node.n_variants} variant{'s' if node.n_variants != 1 else ''}{via}{also}")
        child_prefix = prefix + ("" if top else ("    " if last else "│   "))
        kids = tree.children(node.id)
        note = _check(node)
        if node.unstable and not node.explored:
            note += f"; not explored ({node.expansion or 'depth limit'})"
        elif node.unstable and not kids and not any(r["from"] == node.id for n in nodes for r in n.routes):
            note += "; its relaxations found no phase below it"
        lines.append(f"{child_prefix}    {note}")
        for i, kid in enumerate(kids):
            walk(kid, child_prefix, i == len(kids) - 1, False)

    walk(nodes[0], "", True, True)
    lines += verdict_lines(tree)
    decomposed = [n for n in nodes[1:] if n.modes]
    if decomposed:
        lines += ["", "symmetry modes of each phase of the tree against the root (primary and secondary order "
                  "parameters)"]
        lines += [f"  {n.name}: {summary_of_dict(n.modes)}" for n in decomposed]
    return "\n".join(lines)


def _energy(node) -> str:
    return f"{1000 * node.delta_energy_per_formula_unit_eV:+.2f} meV/f.u."


def verdict_lines(tree) -> list[str]:
    """What the tree says of the ground state: the lowest node when it is a checked local
    minimum; otherwise that the ground state lies below the lowest phase found (its
    unstable channels, how to go deeper) and the lowest local minimum found; and what the
    budget left unexplored."""
    nodes = tree.nodes
    lowest = nodes[getattr(tree, "lowest", 0) or 0]
    lines = []
    if tree.ground_state is not None:
        g = nodes[tree.ground_state]
        lines.append(f"ground state in this setting: {g.name}, {_energy(g)}, "
                     f"{g.n_variants} variant{'s' if g.n_variants != 1 else ''}")
    else:
        worst = ", ".join(f"{c} ({min(lowest.curvatures[c]):+.3f})" for c in lowest.unstable)
        reason = lowest.expansion or "depth limit"
        lines.append(f"ground state in this setting: not found — it lies below {lowest.name} ({_energy(lowest)}), the "
                     f"lowest phase found, which is unstable ({worst}) and was not explored ({reason}); explore "
                     "deeper (a larger --max-depth or budget)")
        m = getattr(tree, "lowest_local_minimum", None)
        if m is not None:
            lines.append(f"lowest local minimum found: {nodes[m].name}, {_energy(nodes[m])}")
    above = [u for u in getattr(tree, "unexplored", []) if u["reason"] == "above the lowest local minimum"]
    if above:
        lines.append(f"{len(above)} unstable phase{'s' if len(above) != 1 else ''} above the ground state "
                     f"{'were' if len(above) != 1 else 'was'} not explored (their descendants lie below them, possibly "
                     "below the ground state: --expand all explores them)")
    budget = [u for u in getattr(tree, "unexplored", []) if u["reason"] == "budget"]
    if budget:
        lines.append(f"{len(budget)} unstable phase{'s' if len(budget) != 1 else ''} left unexplored by the budget: "
                     + ", ".join(u["name"] for u in budget))
    return lines


def plot_tree(tree, title: str, path: str) -> None:
    """PNG: the tree as a group–subgroup diagram, ΔE per formula unit upward; local
    minima filled, the ground state ringed, lines for every route."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes = tree.nodes
    by_depth: dict = {}
    for n in sorted(nodes, key=lambda n: (n.depth, n.delta_energy_per_formula_unit_eV)):
        by_depth.setdefault(n.depth, []).append(n.id)
    x, start, centres = {}, 0.0, {}
    for depth, ids in sorted(by_depth.items()):  # each level's nodes side by side, lowest first
        for rank, i in enumerate(ids):
            x[i] = start + 0.6 * rank
        centres[depth] = start + 0.3 * (len(ids) - 1)
        start += 0.6 * len(ids) + 1.2
    y = {n.id: 1000 * n.delta_energy_per_formula_unit_eV for n in nodes}
    fig, ax = plt.subplots(figsize=(min(24.0, max(5.0, 0.45 * start + 2.0)), 5.2))
    for n in nodes:
        for r in n.routes:
            ax.annotate("", xy=(x[n.id], y[n.id]), xytext=(x[r["from"]], y[r["from"]]), zorder=1,
                        arrowprops=dict(arrowstyle="-|>", color="0.6", lw=1, shrinkA=5, shrinkB=5))
    for n in nodes:
        filled = bool(n.local_minimum)
        ax.scatter([x[n.id]], [y[n.id]], s=60, zorder=3, color="tab:blue" if filled else "white",
                   edgecolors="tab:blue")
        if n.id == tree.ground_state:
            ax.scatter([x[n.id]], [y[n.id]], s=220, zorder=2, facecolors="none", edgecolors="tab:red", linewidths=1.5)
        # slanted down and away from the arrows, which arrive from above; a level's nodes
        # rise from left to right, so a label never runs into its right-hand neighbour
        ax.annotate(n.name, (x[n.id], y[n.id]), textcoords="offset points", xytext=(5, -6), fontsize=8,
                    rotation=-40, rotation_mode="anchor", ha="left", va="top")
    ax.set_xticks([centres[d] for d in sorted(centres)], [f"level {d}" for d in sorted(centres)])
    ax.scatter([], [], s=60, color="tab:blue", label="local minimum in the setting")
    ax.scatter([], [], s=60, color="white", edgecolors="tab:blue", label="unstable (a channel with κ < 0)")
    ax.scatter([], [], s=160, facecolors="none", edgecolors="tab:red", label="ground state")
    # below the axes, where no node label can be
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
    ax.set_ylabel("ΔE (meV per formula unit)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.margins(x=0.08, y=0.2)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
