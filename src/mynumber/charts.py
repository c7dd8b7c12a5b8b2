"""Charts written beside a command's output (matplotlib, no display). Labels are ASCII — reason
codes and English — so no CJK font is needed to draw them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["summary_chart"]


def summary_chart(
    path: Path,
    title: str,
    counts: Mapping[str, int],
    *,
    scores: Sequence[float] = (),
    counts_title: str = "records by reason",
    scores_title: str = "match probability (probabilistic stage)",
) -> None:
    """A PNG at `path` (written atomically): a horizontal bar chart of `counts` and, when
    `scores` are given, their histogram beside it."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    panels = 2 if scores else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 0.3 * max(len(counts), 6) + 1.5))
    ax = axes[0] if panels == 2 else axes
    items = sorted(counts.items(), key=lambda kv: kv[1])
    ax.barh([k for k, _ in items], [v for _, v in items], color="#3465a4")
    for i, (_k, v) in enumerate(items):
        ax.annotate(f"{v:,}", (v, i), xytext=(3, 0), textcoords="offset points", va="center")
    ax.set_title(counts_title)
    ax.set_xlabel("records")
    if panels == 2:
        axes[1].hist(list(scores), bins=20, range=(0.0, 1.0), color="#73a946")
        axes[1].set_title(scores_title)
        axes[1].set_xlabel("probability")
        axes[1].set_ylabel("records")
    fig.suptitle(title)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
