"""Partitions: metrics are hourly; training and reports are daily."""

import os

import dagster as dg

PARTITIONS_START = os.environ.get("RHYTHM_PARTITIONS_START", "2026-01-01")

# end_offset=1: the hour in progress is a partition too (re-running it later completes it, idempotently)
hourly_partitions = dg.HourlyPartitionsDefinition(start_date=f"{PARTITIONS_START}-00:00", timezone="UTC", end_offset=1)
daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")
# reports of a day in progress: today's partition exists (re-materialized through the day, final after midnight)
daily_so_far_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC", end_offset=1)
