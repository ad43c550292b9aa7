"""Metadata helpers so the UI is the dashboard: markdown tables and PNG plots."""

from __future__ import annotations

import base64
import io

import dagster as dg
import pandas as pd


def md_table(frame: pd.DataFrame, max_rows: int = 25) -> dg.MarkdownMetadataValue:
    if frame.empty:
        return dg.MetadataValue.md("_(none)_")
    shown = frame.head(max_rows)
    text = shown.to_markdown(index=False, floatfmt=".4g")
    if len(frame) > max_rows:
        text += f"\n\n_… {len(frame) - max_rows} more rows_"
    return dg.MetadataValue.md(text)


def plot_series(points: pd.DataFrame, metric: str, title: str, max_series: int = 8) -> dg.MarkdownMetadataValue:
    """A line per source of one metric, as an inline PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = points[points["metric"] == metric]
    fig, ax = plt.subplots(figsize=(8, 3), dpi=90)
    for source, g in list(data.groupby("source"))[:max_series]:
        ax.plot(g["ts"], g["value"], label=source, linewidth=1)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(metric)
    if not data.empty:
        ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})")
