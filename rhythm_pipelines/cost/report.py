"""Cost reports for a day, week or month: spend by channel and region, the trend against the previous
period, the savings the routing plan would have made, and the top cost drivers; as markdown and a plot."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rhythm_pipelines.cost.catalog import Catalog
from rhythm_pipelines.cost.evaluation import fit_plan
from rhythm_pipelines.cost.optimizer import RoutingInfeasible, build_problem
from rhythm_pipelines.cost.replay import Replay


@dataclass
class CostReport:
    period: str  # daily | weekly | monthly
    key: str
    start: pd.Timestamp
    end: pd.Timestamp
    total: float
    previous_total: float | None
    calls: int
    by_channel: pd.DataFrame
    by_region: pd.DataFrame
    drivers: pd.DataFrame
    daily: pd.DataFrame  # day x channel spend
    savings: dict | None
    currency: str = "USD"

    @property
    def change(self) -> float | None:
        if not self.previous_total:
            return None
        return (self.total - self.previous_total) / self.previous_total

    def markdown(self) -> str:
        cur = self.currency
        lines = [f"# Cost report, {self.period} {self.key}", ""]
        trend = "" if self.change is None else f" ({self.change:+.1%} against the previous period)"
        lines.append(f"**Spend:** {self.total:,.2f} {cur} over {self.calls:,} calls{trend}.")
        if self.savings and "error" in self.savings:
            lines.append(
                f"**The routing plan** ({self.savings['fitted_on']}): none could be fitted: {self.savings['error']}."
            )
        elif self.savings:
            s = self.savings
            lines.append(
                f"**The routing plan** ({s['fitted_on']}) would have cost {s['plan_cost']:,.2f} {cur} instead of "
                f"{s['observed_cost']:,.2f}: a saving of {s['saving']:,.2f} ({s['saving_share']:.1%}), mean "
                f"latency {s['latency_change']:+.1%}."
            )
        else:
            lines.append("**The routing plan:** no calls in this period.")
        for title, frame in (("By channel", self.by_channel), ("By region", self.by_region),
                             ("Top cost drivers (channel x class)", self.drivers)):  # fmt: skip
            lines += ["", f"## {title}", "", frame.to_markdown(index=False, floatfmt=".4g") if len(frame) else "_none_"]
        return "\n".join(lines) + "\n"

    def plot_png(self) -> bytes:
        """Daily spend stacked by channel."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 3.2), dpi=90)
        if len(self.daily):
            bottom = np.zeros(len(self.daily))
            x = [d.strftime("%m-%d") for d in self.daily.index]
            for channel in self.daily.columns:
                ax.bar(x, self.daily[channel].to_numpy(), bottom=bottom, label=channel)
                bottom += self.daily[channel].to_numpy()
            ax.legend(fontsize=7, loc="upper left", ncol=3)
        ax.set_ylabel(f"spend ({self.currency})")
        ax.set_title(f"{self.period} {self.key}: daily spend by channel", fontsize=10)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        return buf.getvalue()


def _by(priced: pd.DataFrame, cols: list[str], previous: pd.DataFrame | None) -> pd.DataFrame:
    g = priced.groupby(cols, sort=False)
    out = pd.DataFrame({"calls": g.size(), "cost": g["cost"].sum()}).reset_index()
    total = out["cost"].sum()
    out["share"] = out["cost"] / total if total else 0.0
    if previous is not None and len(previous):
        before = previous.groupby(cols)["cost"].sum().rename("previous").reset_index()
        out = out.merge(before, on=cols, how="left")
        out["change"] = (out["cost"] - out["previous"]) / out["previous"]
    return out.sort_values("cost", ascending=False, ignore_index=True)


def plan_savings(fit_calls: pd.DataFrame, calls: pd.DataFrame, catalog: Catalog, fitted_on: str) -> dict | None:
    """What the plan fitted on ``fit_calls`` would have cost on ``calls`` (replayed), against what they did."""
    try:
        problem = build_problem(fit_calls, catalog)
        plan, _ = fit_plan(problem, observed_mean_latency_ms=float(fit_calls["latency_ms"].mean()))
        replay = Replay(calls, problem, catalog)
    except (RoutingInfeasible, ValueError) as exc:
        return {"fitted_on": fitted_on, "error": str(exc)}
    observed, planned = replay.run("observed"), replay.run("plan", plan)
    saving = observed.cost_usd - planned.cost_usd
    return {
        "fitted_on": fitted_on,
        "observed_cost": observed.cost_usd,
        "plan_cost": planned.cost_usd,
        "saving": saving,
        "saving_share": saving / observed.cost_usd if observed.cost_usd else 0.0,
        "latency_change": (planned.mean_latency_ms - observed.mean_latency_ms) / observed.mean_latency_ms,
    }


def build_report(
    period: str,
    key: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    calls: pd.DataFrame,
    previous: pd.DataFrame,
    catalog: Catalog,
    top: int = 10,
) -> CostReport:
    """The report of ``calls`` (the period's) against ``previous`` (the period before's). The savings are
    the plan fitted on the previous period replayed over this one (or fitted on this one, in-sample, when
    there is no previous period)."""
    priced = catalog.price_calls(calls) if len(calls) else pd.DataFrame(columns=["channel", "region", "cls", "cost"])
    before = catalog.price_calls(previous) if len(previous) else None
    days = pd.date_range(start, end - pd.Timedelta(days=1), freq="D")
    daily = pd.DataFrame(index=days)
    if len(priced):
        daily = (
            priced.assign(day=priced["ts"].dt.floor("D")).pivot_table(index="day", columns="channel", values="cost",
                                                                      aggfunc="sum").reindex(days).fillna(0.0)
        )  # fmt: skip
    savings = None
    if len(calls):
        fit, label = (previous, "fitted on the previous period") if len(previous) else (calls, "fitted in-sample")
        savings = plan_savings(fit, calls, catalog, label)
    drivers = _by(priced, ["channel", "cls"], before).head(top) if len(priced) else pd.DataFrame()
    return CostReport(
        period=period,
        key=key,
        start=start,
        end=end,
        total=float(priced["cost"].sum()) if len(priced) else 0.0,
        previous_total=float(before["cost"].sum()) if before is not None else None,
        calls=len(priced),
        by_channel=_by(priced, ["channel"], before) if len(priced) else pd.DataFrame(),
        by_region=_by(priced, ["region"], before) if len(priced) else pd.DataFrame(),
        drivers=drivers.rename(columns={"cls": "class"}),
        daily=daily,
        savings=savings,
        currency=catalog.currency,
    )
