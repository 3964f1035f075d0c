"""Plain-text tables: every table the package prints goes through :func:`format_table`."""

from __future__ import annotations

import numpy as np


def format_table(headers: list[str], rows: list[list]) -> str:
    """Left-aligned text table with a rule under the header."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, (list, tuple)):
        return ", ".join(_fmt(v) for v in x) if x else "-"
    return str(x)


def format_vector(v, digits: int = 4) -> str:
    return "[" + " ".join(f"{x:+.{digits}f}" for x in np.asarray(v) + 0.0) + "]"
