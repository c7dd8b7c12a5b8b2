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
    scores: Mapping[str, Sequence[float]] | None = None,
    counts_title: str = "records by reason",
    scores_title: str = "scores",
    scores_label: str = "score",
) -> None:
    """A PNG at `path` (written atomically): a horizontal bar chart of `counts` and, when
    `scores` are given (series name → values), their stacked histogram beside it."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    series = {k: list(v) for k, v in (scores or {}).items() if v}
    panels = 2 if series else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 0.3 * max(len(counts), 6) + 1.5))
    ax = axes[0] if panels == 2 else axes
    items = sorted(counts.items(), key=lambda kv: kv[1])
    ax.barh([k for k, _ in items], [v for _, v in items], color="#3465a4")
    for i, (_k, v) in enumerate(items):
        ax.annotate(f"{v:,}", (v, i), xytext=(3, 0), textcoords="offset points", va="center")
    ax.set_title(counts_title)
    ax.set_xlabel("records")
    if panels == 2:
        palette = ["#73a946", "#f57900", "#75507b", "#c4a000"]
        axes[1].hist(
            list(series.values()),
            bins=40,
            stacked=True,
            label=list(series),
            color=palette[: len(series)],
        )
        axes[1].set_title(scores_title)
        axes[1].set_xlabel(scores_label)
        axes[1].set_ylabel("records")
        axes[1].legend()
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
