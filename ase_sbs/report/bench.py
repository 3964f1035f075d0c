"""Benchmarks for people: the table and the throughput plot of ``ase-sbs bench``."""

from __future__ import annotations

from ..core.files import save_figure


def plot_throughput(rows: list, info: dict, path: str) -> None:
    """PNG: structures per second against batch size, model alone and full engine step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    b = [r["batch"] for r in rows]
    ax.loglog(b, [r["model_structures_per_s"] for r in rows], "o-", label="model forward+forces")
    ax.loglog(b, [r["engine_structures_per_s"] for r in rows], "s-", label="engine step (all stages of work)")
    from matplotlib.ticker import FormatStrFormatter, NullFormatter, ScalarFormatter

    ax.set_xticks(b)
    ax.set_xticklabels([str(x) for x in b])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ys = [r[k] for r in rows for k in ("model_structures_per_s", "engine_structures_per_s")]
    narrow = max(ys) < 10 * min(ys)  # less than a decade: label the minor ticks too
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2g") if narrow else NullFormatter())
    ax.set_xlabel("batch size (structures)")
    ax.set_ylabel("structures / s")
    ax.set_title(f"{info['structure']} ({info['natoms']} atoms), {info['potential']}, {info['device_name']}",
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def describe(out: dict) -> str:
    """The benchmark as a table."""
    lines = [f"{out['structure']} ({out['natoms']} atoms), {out.get('relaxations', 0)} relaxations, "
             f"{out['potential']} on {out['device_name']} ({out['torch_threads']} threads), "
             f"optimizer {out['optimizer']}"]
    if any(k in out for k in ("ase_s", "batched_s")):
        lines.append(f"{'path':<26}{'wall s':>10}{'vs floor':>10}{'CPU s':>10}")
    floor = out.get("floor_s")
    for key, name in (("ase_s", "ASE (one at a time)"), ("batched_s", "batched engine"),
                      ("floor_s", "floor (model only)")):
        if key in out:
            ratio = f"{out[key] / floor:.2f}x" if floor else "-"
            cpu = out.get(key.replace("_s", "_cpu_s"))
            cpu = f"{cpu:>10.2f}" if cpu is not None else f"{'-':>10}"
            lines.append(f"{name:<26}{out[key]:>10.2f}{ratio:>10}{cpu}")
    if "batched_engine_s" in out:
        f = f" = {out['batched_engine_s'] / floor:.2f}x the floor" if floor else ""
        lines.append("of the batched explore, inside the engine (relaxations only): "
                     f"{out['batched_engine_s']:.2f} s{f}")
    if "speedup" in out:
        lines.append(f"speed-up of the batched engine over the ASE path: {out['speedup']:.2f}x")
    if "same_phases" in out:
        lines.append(f"same phases: {out['same_phases']}, largest ΔE difference "
                     f"{out['max_dE_diff_meV_per_atom']:.3f} meV/atom, optimizer steps "
                     f"{out['steps_ase']} (ASE) / {out['steps_batched']} (batched)")
    if "evaluations" in out:
        lines.append("batch sizes evaluated (size: count): "
                     + ", ".join(f"{k}: {v}" for k, v in out["evaluations"].items()))
    for r in out.get("sweep", []):
        lines.append(f"batch {r['batch']:>5}: model {r['model_structures_per_s']:>9.1f} structures/s, "
                     f"engine step {r['engine_structures_per_s']:>9.1f} structures/s")
    if "many" in out:
        m = out["many"]
        mem = f", peak {m['peak_memory_GiB']:.2f} GiB" if m["peak_memory_GiB"] is not None else ""
        lines.append(f"{m['structures']} x {m['natoms']} atoms in one call: {m['wall_s']:.1f} s, "
                     f"largest batch {m['largest_batch']}, {m['converged']} converged{mem}")
    if "load_average_start" in out:
        lines.append("load average (1 min) at start / end: "
                     f"{out['load_average_start'][0]:.2f} / {out.get('load_average_end', [float('nan')])[0]:.2f}")
    return "\n".join(lines)
