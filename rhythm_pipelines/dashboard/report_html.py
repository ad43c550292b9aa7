"""Reports as one self-contained HTML file (charts embedded as PNG data URIs: it opens offline, mails
whole), and the seed's KPIs as a markdown summary for the daily/weekly/monthly reports."""

from __future__ import annotations

import base64
import html

from markdown_it import MarkdownIt

from rhythm_pipelines.dashboard.kpis import TARGETS

STYLE = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2rem auto;color:#1f2328;padding:0 1rem}
table{border-collapse:collapse;margin:.6rem 0}
th,td{border-bottom:1px solid #d0d7de;padding:.25rem .6rem;text-align:left}
img{max-width:100%}.green{color:#1a7f37}.amber{color:#b7791f}.red{color:#cf222e}.grey{color:#8c959f}
footer{margin-top:2rem;color:#59636e;font-size:.8rem}"""
def kpi_markdown(kpis: dict) -> str:
    """The KPIs of :func:`~rhythm_pipelines.dashboard.kpis.kpis` against their targets, as a markdown table
    (today's spend and the daily budget only when they were computed: a past period's report has none)."""
    rows = ["| KPI | value | target | status |", "|---|---|---|---|"]
    for key, target in TARGETS.items():
        value = kpis.get(key)
        if key == "budget_used" and kpis.get("spend_today_usd") is None:
            continue
        shown = "–" if value is None else target.show(float(value))
        rows.append(f"| {target.label} | {shown} | {target.goal} | {kpis['grades'].get(key, 'grey')} |")
    mttr = kpis.get("mttr_s")
    rows.append(f"| MTTR (mean) | {'–' if mttr is None else f'{mttr:.1f} s'} | | |")
    if kpis.get("spend_today_usd") is not None:
        rows.append(f"| spend today (UTC) | ${kpis['spend_today_usd']:,.2f} | | |")
    rows.append(f"| open incidents | {kpis['open_incidents']} | 0 | {'red' if kpis['open_incidents'] else 'green'} |")
    return "\n".join(rows) + "\n"


def html_page(title: str, markdown_text: str, images: list[tuple[str, bytes]] = (), footer: str = "") -> str:
    """One HTML document: the markdown rendered (tables included), then each PNG embedded."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)
    for key in ("green", "amber", "red", "grey"):  # colour the status cells of the KPI table
        body = body.replace(f"<td>{key}</td>", f'<td class="{key}">{key}</td>')
    figures = "".join(
        f'<figure><img alt="{html.escape(name, quote=True)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}"><figcaption>{html.escape(name)}</figcaption></figure>'
        for name, png in images
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}{figures}"
        f"<footer>{html.escape(footer)}</footer></body></html>\n"
    )
