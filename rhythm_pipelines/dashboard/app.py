"""The operator's dashboard: a Starlette app over the store (``rhythm dashboard``).

Pages are static HTML + JS that poll the JSON API every few seconds (no reload) and draw with the plotly.js
shipped inside the ``plotly`` package: nothing is fetched from a CDN. ``/metrics`` exports the same
snapshot to Prometheus. Each snapshot is computed at most once per ``cache_s`` seconds, whoever asks.
"""

from __future__ import annotations

import contextlib
import html
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from rhythm_pipelines.dashboard import kpis as kpi_mod
from rhythm_pipelines.dashboard import views
from rhythm_pipelines.dashboard.exporter import RhythmCollector
from rhythm_pipelines.dashboard.spend import SpendLedger
from rhythm_pipelines.metrics.store import MetricsStore

STATIC = Path(__file__).parent / "static"
PAGES = {  # path: (page id, title)
    "/": ("overview", "Overview"),
    "/hosts": ("hosts", "Hosts"),
    "/channels": ("channels", "Channels & regions"),
    "/healing": ("healing", "Healing"),
    "/cost": ("cost", "Cost & ROI"),
    "/forecasts": ("forecasts", "Forecasts"),
}
MAX_RANGE = pd.Timedelta(days=31)
COST_CACHED = 8
COST_TTL_S = 60.0  # the Cost page's spend breakdown, frontier and plan savings are recomputed this often
log = logging.getLogger(__name__)
STALE_AFTER = 3  # refresh periods: a snapshot older than this (plus its computation) says it is stale


class BadRequest(ValueError):
    """A query parameter the API cannot use: answered 400 with the reason."""


def plotly_js() -> Path:
    """plotly.min.js as the installed ``plotly`` package ships it."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def hours_param(request: Request, default: float = 24.0) -> pd.Timedelta:
    raw = request.query_params.get("hours", str(default))
    try:
        hours = float(raw)
    except ValueError:
        raise BadRequest(f"hours: expected a number of hours, got {raw!r}") from None
    if not 0 < hours <= MAX_RANGE / pd.Timedelta(hours=1):
        raise BadRequest(f"hours: must be in (0, {MAX_RANGE / pd.Timedelta(hours=1):g}], got {raw!r}")
    return pd.Timedelta(hours=hours)


def list_param(request: Request, name: str) -> list[str] | None:
    values = [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]
    return values or None


@dataclass
class Snapshots:
    """The KPIs, latest series values and healing counters. A background thread recomputes them every
    ``cache_s`` seconds (``start``), so a page or a scrape never waits for the computation; without the thread
    (``cache_s`` 0, or before it starts) a request computes them itself."""

    store: MetricsStore
    landing: Path | None = None
    cache_s: float = 3.0
    clock: Callable[[], pd.Timestamp] = lambda: pd.Timestamp.now(tz="UTC")
    dagster_runs: Callable[[], dict | None] = lambda: None
    ledger: SpendLedger | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cached: tuple[float, dict] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def get(self) -> dict:
        cached = self._cached
        if cached is not None and (self._thread is not None or time.monotonic() - cached[0] < self.cache_s):
            snap = cached[1]
        else:
            snap = self.refresh()
        age = round(time.monotonic() - self._cached[0], 1)
        return {**snap, "kpis": {**snap["kpis"], "snapshot_age_s": age, "stale": age > STALE_AFTER * self.cache_s + 30}}

    def refresh(self) -> dict:
        asked = time.monotonic()
        with self._lock:
            if self._cached is not None and self._cached[0] >= asked:
                return self._cached[1]  # made while this call waited for the lock: as fresh as asked
            now = self.clock()
            t0 = time.perf_counter()
            snap = {
                "kpis": kpi_mod.kpis(self.store, now, landing=self.landing, ledger=self.ledger),
                "latest": views.latest(self.store, now),
                "actions": self._actions(),
                "dagster_runs": self.dagster_runs(),
            }
            snap["kpis"]["computed_in_s"] = round(time.perf_counter() - t0, 4)
            self._cached = (time.monotonic(), snap)
            return snap

    def start(self) -> None:
        if self.cache_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="rhythm-snapshots", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - a failed refresh keeps the last snapshot; the next one retries
                log.exception("refreshing the dashboard's snapshot failed")
            self._stop.wait(self.cache_s)

    def _actions(self) -> dict[tuple[str, str, str], int]:
        log_ = self.store.read_table("healing_log", step="act")
        if log_.empty:
            return {}
        log_ = log_[~kpi_mod.replayed(log_)]
        counts = log_.groupby(["kind", "action", "outcome"]).size()
        return {tuple(map(str, k)): int(n) for k, n in counts.items()}


@dataclass(frozen=True)
class Sources:
    """Where the pages read what is not in the store: the healing state (routes in force), the breaker
    settings of the playbooks, the model registry, the price catalog."""

    routes_file: Path | None = None
    breaker: object | None = None  # healing.breaker.BreakerConfig
    registry: object | None = None  # forecasting.registry.ModelRegistry
    catalog: object | None = None  # cost.catalog.Catalog


def create_app(
    store: MetricsStore,
    dagster_url: str = "http://127.0.0.1:3000",
    landing: Path | None = None,
    refresh_s: float = 5.0,
    cache_s: float = 3.0,
    clock: Callable[[], pd.Timestamp] | None = None,
    dagster_runs: Callable[[], dict | None] | None = None,
    sources: Sources | None = None,
) -> Starlette:
    """The dashboard over ``store``; ``clock`` fixes "now" (tests), ``dagster_runs`` counts runs per job."""
    from rhythm_pipelines.cost import catalog as catalogs

    sources = sources or Sources()
    catalog = sources.catalog or catalogs.load()
    ledger = SpendLedger(catalog)
    snaps = Snapshots(store, landing, cache_s, clock or (lambda: pd.Timestamp.now(tz="UTC")),
                      dagster_runs or (lambda: None), ledger)  # fmt: skip
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RhythmCollector(snaps.get))
    template = (STATIC / "page.html").read_text()

    def now() -> pd.Timestamp:
        return snaps.clock()

    def page(path: str):
        page_id, title = PAGES[path]

        async def render(request: Request) -> HTMLResponse:
            nav = "".join(
                f'<a href="{p}" class="{"active" if p == path else ""}">{html.escape(t)}</a>'
                for p, (_, t) in PAGES.items()
            )
            body = (
                template.replace("{{title}}", html.escape(title))
                .replace("{{page}}", page_id)
                .replace("{{nav}}", nav)
                .replace("{{dagster_url}}", html.escape(dagster_url.rstrip("/"), quote=True))
                .replace("{{refresh_ms}}", str(int(refresh_s * 1000)))
            )
            return HTMLResponse(body)

        return render

    def api(fn: Callable[[Request], object]):
        def endpoint(request: Request) -> Response:
            try:
                return Response(views.dumps(fn(request)), media_type="application/json")
            except BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)

        return endpoint

    def kpis(request: Request) -> dict:
        return snaps.get()["kpis"]

    def trend(request: Request) -> dict:
        hours = hours_param(request, 24.0)
        n = max(1, int(round(hours / pd.Timedelta(hours=1))))
        # within a day the ledger's hourly sums; further back it holds day totals: read the calls
        frame = kpi_mod.trend(store, now(), n, catalog, ledger if n <= 24 else None)
        return {"hours": frame.to_dict("list"), "targets": {k: t.good for k, t in kpi_mod.TARGETS.items()}}

    def hosts(request: Request) -> dict:
        t = now()
        return views.hosts(store, t, t - hours_param(request, 6.0), list_param(request, "host"))

    def healing(request: Request) -> dict:
        t = now()
        q = request.query_params
        rows = views.healing_timeline(
            store, t - hours_param(request, 24.0), t + pd.Timedelta(seconds=1), q.get("kind"), q.get("target"),
            q.get("level"),
        )  # fmt: skip
        return {"events": rows, "kinds": sorted({r["kind"] for r in rows})}

    def channels(request: Request) -> dict:
        t = now()
        return views.channels(store, t, t - hours_param(request, 6.0), list_param(request, "channel"),
                              sources.routes_file, sources.breaker)  # fmt: skip

    cost_cache: dict[int, tuple[float, dict]] = {}
    cost_lock = threading.Lock()

    def cost(request: Request) -> dict:
        """The frontier's LP and the plan's replay take seconds on a busy day: reused for ``COST_TTL_S``, per
        whole number of hours (at most ``COST_CACHED`` ranges kept), one computation at a time."""
        hours = max(1, round(hours_param(request, 24.0) / pd.Timedelta(hours=1)))
        budgets = snaps.get()["kpis"]["budgets"]
        with cost_lock:
            hit = cost_cache.get(hours)
            if hit is None or time.monotonic() - hit[0] > COST_TTL_S:
                t = now()
                out = views.cost(store, t, t - pd.Timedelta(hours=hours), catalog, [])
                hit = (time.monotonic(), {**out, "computed_at": t.isoformat()})
                cost_cache.pop(hours, None)
                cost_cache[hours] = hit
                while len(cost_cache) > COST_CACHED:
                    cost_cache.pop(next(iter(cost_cache)))  # the oldest computed
        return {**hit[1], "budgets": budgets}

    def forecasts(request: Request) -> dict:
        t = now()
        return views.forecasts(store, t, t - hours_param(request, 24.0), sources.registry)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def plotly_file(request: Request) -> FileResponse:
        return FileResponse(plotly_js(), media_type="text/javascript")

    routes = [Route(p, page(p)) for p in PAGES]
    routes += [
        Route("/api/kpis", api(kpis)),
        Route("/api/trend", api(trend)),
        Route("/api/hosts", api(hosts)),
        Route("/api/healing", api(healing)),
        Route("/api/channels", api(channels)),
        Route("/api/cost", api(cost)),
        Route("/api/forecasts", api(forecasts)),
        Route("/metrics", metrics),
        Route("/healthz", healthz),
        Route("/static/plotly.min.js", plotly_file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        snaps.start()
        yield
        snaps.stop()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.snapshots = snaps
    return app
