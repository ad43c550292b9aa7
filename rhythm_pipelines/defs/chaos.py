"""Chaos-only jobs, loaded when ``$RHYTHM_CHAOS=1`` (``rhythm chaos run`` sets it in its sandbox): a job that
fails until it is retried, and an upstream asset whose failure breaks three downstream assets.

How many times each fails is a counter file in ``$RHYTHM_CHAOS_DIR`` that the chaos runner writes.
"""

import os
from pathlib import Path

import dagster as dg

CHAOS_GROUP = "chaos"


def chaos_dir() -> Path:
    return Path(os.environ.get("RHYTHM_CHAOS_DIR", ".rhythm/chaos"))


def fail_now(name: str) -> int:
    """Consume one planned failure of ``name``; returns how many were left before (0: succeed)."""
    path = chaos_dir() / f"{name}.fail"
    try:
        left = int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0
    if left > 0:
        path.write_text(str(left - 1))
    return left


@dg.op
def chaos_flaky_op(context: dg.OpExecutionContext) -> None:
    left = fail_now("flaky")
    if left:
        raise RuntimeError(f"chaos: the flaky service is down ({left - 1} more failure(s) planned)")
    context.log.info("chaos: the flaky service answered")


@dg.job(tags={"rhythm/chaos": "1"}, description="Chaos: fails while failures are planned, then recovers.")
def chaos_flaky_job() -> None:
    chaos_flaky_op()


BROKEN = "upstream.broken"


@dg.asset(group_name=CHAOS_GROUP, description="Chaos: an upstream feed; while it fails its data is marked broken.")
def chaos_upstream() -> None:
    marker = chaos_dir() / BROKEN
    if fail_now("upstream"):
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        raise RuntimeError("chaos: the upstream feed failed")
    marker.unlink(missing_ok=True)


def _downstream(i: int) -> dg.AssetsDefinition:
    @dg.asset(name=f"chaos_down_{i}", deps=[chaos_upstream], group_name=CHAOS_GROUP)
    def down() -> None:
        """Chaos: fails while its upstream's data is broken."""
        if (chaos_dir() / BROKEN).exists():
            raise RuntimeError("chaos: upstream data is broken")

    return down


chaos_downstreams = [_downstream(i) for i in (1, 2, 3)]
chaos_upstream_job = dg.define_asset_job("chaos_upstream_job", selection=dg.AssetSelection.assets(chaos_upstream))
chaos_downstream_job = dg.define_asset_job(
    "chaos_downstream_job", selection=dg.AssetSelection.assets(*chaos_downstreams)
)

chaos_assets = [chaos_upstream, *chaos_downstreams]
chaos_jobs = [chaos_flaky_job, chaos_upstream_job, chaos_downstream_job]


def enabled() -> bool:
    return os.environ.get("RHYTHM_CHAOS", "") in ("1", "true", "yes")
