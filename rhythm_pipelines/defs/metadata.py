"""Metadata helpers so the UI is the dashboard: markdown tables and PNG plots."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable

import dagster as dg
import pandas as pd


def num(x: float | None, digits: int = 4) -> float | None:
    """A figure for people: ``digits`` significant digits (0.17259434245142374 -> 0.1726); None stays None."""
    if x is None or x != x or x in (float("inf"), float("-inf")):
        return x
    return float(f"{x:.{digits}g}")


def md_table(frame: pd.DataFrame, max_rows: int = 25) -> dg.MarkdownMetadataValue:
    if frame.empty:
        return dg.MetadataValue.md("_(none)_")
    shown = frame.head(max_rows)
    text = shown.to_markdown(index=False, floatfmt=".4g")
    if len(frame) > max_rows:
        text += f"\n\n_… {len(frame) - max_rows} more rows_"
    return dg.MetadataValue.md(text)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig, title: str, dates: bool = True, layout: bool = True) -> dg.MarkdownMetadataValue:
    plt = _pyplot()
    if dates:
        fig.autofmt_xdate()
    if layout:
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})")


def plot_series(points: pd.DataFrame, metric: str, title: str, max_series: int = 8) -> dg.MarkdownMetadataValue:
    """A line per source of one metric, as an inline PNG."""
    plt = _pyplot()
    data = points[points["metric"] == metric]
    fig, ax = plt.subplots(figsize=(8, 3), dpi=90)
    for source, g in list(data.groupby("source"))[:max_series]:
        ax.plot(g["ts"], g["value"], label=source, linewidth=1)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(metric)
    if not data.empty:
        ax.legend(fontsize=7, loc="upper left", ncol=2)
    return _png(fig, title)


def plot_flags(
    frame: pd.DataFrame,
    title: str,
    windows: Iterable[tuple[pd.Timestamp, pd.Timestamp]] = (),
    ylabel: str = "value",
) -> dg.MarkdownMetadataValue:
    """One series (``frame`` columns ts, value, flagged) with its flagged points marked and labelled windows
    shaded, as an inline PNG."""
    plt = _pyplot()
    ts = pd.DatetimeIndex(frame["ts"])
    values, flags = frame["value"].to_numpy(dtype="float64"), frame["flagged"].to_numpy(dtype=bool)
    fig, ax = plt.subplots(figsize=(8, 3), dpi=90)
    ax.plot(ts, values, linewidth=1, color="tab:blue", label=ylabel)
    for i, (a, b) in enumerate(windows):
        ax.axvspan(a, b, color="tab:orange", alpha=0.25, label="labelled window" if i == 0 else None)
    if flags.any():
        ax.scatter(ts[flags], values[flags], color="tab:red", marker="v", s=40, zorder=3, label="alert")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="upper left")
    return _png(fig, title)


def plot_forecast(
    actual: pd.Series,
    forecasts: dict[str, pd.Series],
    title: str,
    band: tuple[pd.Series, pd.Series] | None = None,
    band_label: str = "80% interval",
    ylabel: str = "value",
) -> dg.MarkdownMetadataValue:
    """Actual values (a time-indexed series), forecast lines and an interval band, as an inline PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3), dpi=90)
    ax.plot(actual.index, actual.to_numpy(), linewidth=1, color="black", label="actual")
    if band is not None:
        lo, hi = band
        ax.fill_between(lo.index, lo.to_numpy(), hi.to_numpy(), color="tab:blue", alpha=0.2, label=band_label)
    for (label, line), color in zip(forecasts.items(), ("tab:blue", "tab:orange", "tab:green"), strict=False):
        ax.plot(line.index, line.to_numpy(), linewidth=1, color=color, label=label)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="upper left")
    return _png(fig, title)


def plot_incidents(
    events: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, title: str
) -> dg.MarkdownMetadataValue:
    """A timeline of healing events (``start``, ``closed``, ``kind``, ``source``, ``level``, ``status``): one
    bar per event from detection to resolution, coloured by level; unresolved ones run to the end."""
    plt = _pyplot()
    colours = {"soft": "tab:green", "hard": "tab:orange", "critical": "tab:red"}
    fig, ax = plt.subplots(figsize=(8, max(2.0, 0.3 * len(events) + 1)), dpi=90)
    for i, e in enumerate(events.itertuples(index=False)):
        closed = e.closed if pd.notna(e.closed) else end
        width = max((closed - e.start).total_seconds(), 60) / 86400
        ax.barh(
            i, width, left=e.start, color=colours.get(e.level, "tab:gray"), hatch="" if e.status == "resolved" else "//"
        )
    ax.set_yticks(range(len(events)), [f"{e.kind} {e.source}"[:40] for e in events.itertuples(index=False)], fontsize=7)
    ax.set_xlim(start, end)
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=lv) for lv, c in colours.items()]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="not resolved by healing"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", ncols=4, bbox_to_anchor=(0, -0.12), frameon=False)
    ax.set_xlabel("UTC", fontsize=8)
    ax.set_title(title, fontsize=10)
    return _png(fig, title)


def png_md(png: bytes, title: str) -> dg.MarkdownMetadataValue:
    """PNG bytes made elsewhere, inline in markdown."""
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")


def plot_frontier(routes: pd.DataFrame, curve: pd.DataFrame, title: str) -> dg.MarkdownMetadataValue:
    """Left: routes on cost per call vs p95 latency, the Pareto ones filled. Right: the budget sweep, the
    best mean (and p95) latency the optimiser reaches for each daily budget."""
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=90)
    on = routes["pareto"].to_numpy(dtype=bool)
    a.scatter(routes.loc[~on, "cost_per_call"], routes.loc[~on, "p95_latency_ms"], facecolors="none",
              edgecolors="tab:gray", label="dominated")  # fmt: skip
    a.scatter(routes.loc[on, "cost_per_call"], routes.loc[on, "p95_latency_ms"], color="tab:blue", label="Pareto")
    for r in routes.itertuples(index=False):
        a.annotate(r.route, (r.cost_per_call, r.p95_latency_ms), fontsize=6, xytext=(3, 3), textcoords="offset points")
    a.set_xscale("log")
    a.xaxis.set_minor_formatter(_null_formatter())  # minor labels on a short log axis overlap
    a.tick_params(axis="x", labelsize=7)
    a.set_xlabel("cost per call ($, average request)")
    a.set_ylabel("p95 latency (ms)")
    a.legend(fontsize=7)
    a.set_title("routes", fontsize=9)
    if len(curve):
        b.plot(curve["cost_usd"], curve["mean_latency_ms"], marker=".", label="mean latency")
        b.plot(curve["cost_usd"], curve["p95_latency_ms"], marker=".", label="p95 latency")
        b.legend(fontsize=7)
        if len(curve) == 1:
            b.annotate("the cheapest mix is also the fastest:\nno trade-off to sweep", (0.5, 0.5),
                       xycoords="axes fraction", ha="center", fontsize=8)  # fmt: skip
    b.set_xlabel("daily cost ($) of the best mix within the budget")
    b.set_ylabel("latency (ms)")
    b.set_title("traffic mixes: budget sweep", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return png_md(buf.getvalue(), title)


def _null_formatter():
    from matplotlib.ticker import NullFormatter

    return NullFormatter()


def partitions_of(context: dg.AssetExecutionContext) -> list[tuple[str, pd.Timestamp, pd.Timestamp]]:
    """The time partitions a run covers, as (key, start, end); empty for a run of one partition (its
    materialization already describes it) or an unpartitioned asset."""
    if not context.has_partition_key_range or len(context.partition_keys) < 2:
        return []
    pdef = context.assets_def.partitions_def
    out = []
    for key in context.partition_keys:
        w = pdef.time_window_for_partition_key(key)
        out.append((key, pd.Timestamp(w.start).tz_convert("UTC"), pd.Timestamp(w.end).tz_convert("UTC")))
    return out


def run_scoped(context: dg.AssetExecutionContext, metadata: dict) -> dict:
    """``metadata`` as it stands for a run of one partition; for a run covering several, its figures named
    ``run_…`` after a ``figures_cover`` line: Dagster records one materialization for each partition with the
    same metadata (dagster-io/dagster#18123), so they must not read as the partition's own (each partition's
    own figures go into an observation of that partition)."""
    if not context.has_partition_key_range or len(context.partition_keys) < 2:
        return metadata
    keys = context.partition_keys
    cover = (
        f"the whole run: {len(keys)} partitions, {keys[0]} … {keys[-1]}; this partition's own figures are in its "
        "observation (Events, 'Observation')"
    )
    return {"figures_cover": dg.MetadataValue.text(cover), **{f"run_{k}": v for k, v in metadata.items()}}


def dashboard_link(path: str, **params: object) -> dg.UrlMetadataValue:
    """A link to a page of the operator's dashboard (``$RHYTHM_DASHBOARD_URL``, default the one ``make dev``
    starts), with its URL-held filters."""
    import os
    from urllib.parse import urlencode

    base = os.environ.get("RHYTHM_DASHBOARD_URL", "http://127.0.0.1:3001").rstrip("/")
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return dg.MetadataValue.url(f"{base}{path}" + (f"?{query}" if query else ""))


def plot_plan(plan, targets, title: str, max_hosts: int = 3) -> dg.MarkdownMetadataValue:
    """The schedule plan as a Gantt chart under each host's forecast load: the forecast alone (dashed), with
    the planned runs (solid), the target, and a row per job with a bar per run (hatched: moved; black tick:
    its nominal time)."""
    plt = _pyplot()
    hosts = sorted({p.run.host for p in plan.placements})[:max_hosts] or sorted(plan.load)[:max_hosts]
    if not hosts:
        fig, ax = plt.subplots(figsize=(8, 1.5), dpi=90)
        ax.text(0.5, 0.5, "nothing to plan", ha="center", va="center")
        ax.set_axis_off()
        return _png(fig, title)
    rows = sorted({(p.run.host, p.run.job) for p in plan.placements if p.run.host in hosts})
    tall = max(len(rows), 2) * 0.4
    fig, axes = plt.subplots(len(hosts) + 1, 1, figsize=(9, 2.0 * len(hosts) + tall + 0.8), dpi=90, sharex=True,
                             gridspec_kw={"height_ratios": [2] * len(hosts) + [tall]})  # fmt: skip
    for ax, host in zip(axes, hosts, strict=False):
        base, load = plan.baseline[host], plan.load[host]
        ax.plot(base.index, base["cpu"], linestyle="--", color="tab:gray", linewidth=1, label="forecast CPU")
        ax.plot(load.index, load["cpu"], color="tab:blue", linewidth=1.2, label="with the plan")
        ax.axhline(targets.cpu, color="tab:red", linewidth=0.8, label=f"target {targets.cpu:g} %")
        ax.set_ylabel(f"{host}\nCPU %", fontsize=8)
        ax.set_ylim(0, max(100.0, float(load["cpu"].max()) + 5))
        ax.legend(fontsize=6, loc="upper left", ncol=3)
    gantt = axes[-1]
    colors = {"high": "tab:red", "normal": "tab:blue", "low": "tab:green"}
    row_of = {r: i for i, r in enumerate(rows)}
    for p in plan.placements:
        if (p.run.host, p.run.job) not in row_of:
            continue
        i = row_of[(p.run.host, p.run.job)]
        width = (p.end - p.start) / pd.Timedelta(days=1)
        gantt.barh(i, width, left=p.start, color=colors.get(p.run.priority, "tab:gray"), alpha=0.8,
                   hatch="//" if p.moved != pd.Timedelta(0) else None, edgecolor="black", linewidth=0.3)  # fmt: skip
        if p.moved != pd.Timedelta(0):
            gantt.plot([p.run.nominal, p.run.nominal], [i - 0.4, i + 0.4], color="black", linewidth=1)
    gantt.set_yticks(range(len(rows)))
    gantt.set_yticklabels([f"{job}@{host}" for host, job in rows], fontsize=7)
    gantt.set_ylim(len(rows) - 0.5, -0.5)
    gantt.set_title("runs (hatched: moved, black tick: its nominal time; red high, blue normal, green low)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.autofmt_xdate()
    fig.tight_layout(rect=(0, 0, 1, 0.97))  # room for the title above the first panel's legend
    return _png(fig, title, dates=False, layout=False)


def plot_week(heat: pd.DataFrame, title: str, label: str = "mean CPU %") -> dg.MarkdownMetadataValue:
    """A sources x hour-of-week heat map (Monday 00:00 on the left)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.35 * max(len(heat), 2) + 1.2), dpi=90)
    if heat.empty:
        ax.text(0.5, 0.5, "no profile yet", ha="center", va="center")
        ax.set_axis_off()
        return _png(fig, title)
    im = ax.imshow(heat.to_numpy(dtype="float64"), aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(heat)))
    ax.set_yticklabels(heat.index, fontsize=7)
    ax.set_xticks(range(0, 168, 24))
    ax.set_xticklabels(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], fontsize=7)
    fig.colorbar(im, ax=ax, label=label)
    ax.set_title(title, fontsize=10)
    return _png(fig, title, dates=False)


def plot_timelines(patterns: list, incidents: pd.DataFrame, title: str, top: int = 12):
    """One row per pattern (the most frequent first): a mark at each of its incidents."""
    plt = _pyplot()
    shown = sorted(patterns, key=lambda p: (-p.count, p.pattern_id))[:top]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(shown) + 1.4), dpi=90)
    starts = incidents.set_index("incident_id")["start"]
    for y, p in enumerate(reversed(shown)):
        ts = starts.reindex(p.members).dropna()
        ax.scatter(ts, [y] * len(ts), s=18, marker="|" if p.precursor is None else "o")
    names = [f"{(p.label or p.kind)[:28]} @ {p.root[:18]} ({p.count})" for p in reversed(shown)]
    ax.set_yticks(range(len(shown)), names, fontsize=8)
    ax.set_title(title, fontsize=10)
    return _png(fig, title)


def plot_ab(path: pd.DataFrame, alpha: float, title: str) -> dg.MarkdownMetadataValue:
    """An A/B's sequential test over its requests: the failure-rate difference with its always-valid interval
    (top) and the always-valid p-value against the level (bottom)."""
    plt = _pyplot()
    ready = path[path["ready"]] if "ready" in path else path[path["p"] < 1.0]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 4.4), dpi=90, sharex=True)
    top.plot(path["n"], path["diff"], linewidth=1, label="tuned − default failure rate")
    top.fill_between(ready["n"], ready["lo"], ready["hi"], alpha=0.25, label=f"always-valid {1 - alpha:.0%} interval")
    top.axhline(0, color="grey", linewidth=0.8)
    top.legend(fontsize=7, loc="upper left")
    top.set_title(title, fontsize=10)
    bottom.semilogy(path["n"], path["p"].clip(lower=1e-6), linewidth=1, label="always-valid p")
    bottom.axhline(alpha, color="red", linewidth=0.8, linestyle="--", label=f"level {alpha:g}")
    bottom.set_xlabel("requests in the test")
    bottom.legend(fontsize=7, loc="lower left")
    return _png(fig, title, dates=False)
