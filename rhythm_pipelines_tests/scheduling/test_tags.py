"""Scheduling tags: what a job says about itself, and a clear error naming the job and tag when it is wrong."""

from __future__ import annotations

import pandas as pd
import pytest

from rhythm_pipelines.scheduling.tags import Cost, ScheduleTagError, parse_tags


def test_tags_are_read_into_priority_deadline_and_cost():
    got = parse_tags("nightly", {"rhythm/priority": "low", "rhythm/deadline": "by 06:00", "rhythm/cron": "0 23 * * *",
                                 "rhythm/cost": "cpu=30, mem=10%, duration=1.5h", "rhythm/host": "db-01"})  # fmt: skip
    assert got.priority == "low" and got.deferrable
    assert got.cost == Cost(cpu=30.0, mem=10.0, duration=pd.Timedelta(minutes=90))
    nominal = pd.Timestamp("2026-03-03 23:00", tz="UTC")
    assert got.deadline.after(nominal) == pd.Timestamp("2026-03-04 06:00", tz="UTC")  # the next 06:00
    assert got.host == "db-01"
    day = pd.Timestamp("2026-03-03", tz="UTC")
    hours = [day + pd.Timedelta(hours=h) for h in (23, 47)]
    assert got.nominal_times(day, day + pd.Timedelta(days=2)) == hours
    within = parse_tags("hourly", {"rhythm/deadline": "within 90m", "rhythm/cron": "15 * * * *"})
    assert within.priority == "normal" and within.deadline.after(nominal) == nominal + pd.Timedelta(minutes=90)
    assert parse_tags("plain", {"owner": "team"}) is None  # no scheduling tag: it does not take part
    only = parse_tags("paused_by_healing", {"rhythm/priority": "low"})
    assert only.cron is None and only.nominal_times(day, day + pd.Timedelta(days=1)) == []  # not planned


CRON = {"rhythm/cron": "0 2 * * *"}


@pytest.mark.parametrize(
    ("tags", "tag", "says"),
    [
        ({"rhythm/priority": "urgent"}, "rhythm/priority", "expected one of high, normal, low"),
        ({"rhythm/deadline": "by 25:00", **CRON}, "rhythm/deadline", "expected 'by HH:MM'"),
        ({"rhythm/deadline": "soon", **CRON}, "rhythm/deadline", "expected 'by HH:MM'"),
        ({"rhythm/cost": "cpu=lots"}, "rhythm/cost", "cpu must be a percentage"),
        ({"rhythm/cost": "cpu=130"}, "rhythm/cost", "within 0-100 %"),
        ({"rhythm/cost": "gpu=3"}, "rhythm/cost", "expected cpu=, mem= or duration="),
        ({"rhythm/cost": "duration=forever"}, "rhythm/cost", "duration must be like"),
        ({"rhythm/cost": "cpu=3,cpu=4"}, "rhythm/cost", "cpu given twice"),
        ({"rhythm/priority": "high", "rhythm/deadline": "within 1h"}, "rhythm/deadline", "never moved"),
        ({"rhythm/deadline": "within 1h"}, "rhythm/deadline", "no rhythm/cron tag: nothing for the scheduler"),
        ({"rhythm/cron": "0 25 * * *"}, "rhythm/cron", "not a cron expression"),
        ({"rhythm/cron": "hourly"}, "rhythm/cron", "expected 5 cron fields"),
    ],
)
def test_bad_tags_name_the_job_the_tag_and_the_value(tags, tag, says):
    with pytest.raises(ScheduleTagError) as err:
        parse_tags("nightly_batch", tags)
    assert str(err.value).startswith(f"job nightly_batch: tag {tag}: ") and says in str(err.value)
    assert err.value.job == "nightly_batch" and err.value.tag == tag


def test_runs_to_place_start_when_first_planned_keep_deferred_ones_and_drop_missed_high_ticks():
    from rhythm_pipelines.scheduling.jobs import runs_to_place

    now = pd.Timestamp("2026-03-03 10:22", tz="UTC")
    hourly = parse_tags("report", {"rhythm/cron": "0 * * * *", "rhythm/priority": "low"})
    probe = parse_tags("probe", {"rhythm/cron": "0 * * * *", "rhythm/priority": "high"})

    def nominal(runs, job):
        return sorted(r.nominal for r in runs if r.job == job and r.nominal <= now)

    fresh = runs_to_place([hourly, probe], {}, now, "h", set())
    assert nominal(fresh, "report") == [] and nominal(fresh, "probe") == []  # first start: no burst of past times
    since = {"report": now - pd.Timedelta(minutes=30), "probe": now - pd.Timedelta(hours=3)}
    later = runs_to_place([hourly, probe], {}, now, "h", set(), since=since)
    assert nominal(later, "report") == [pd.Timestamp("2026-03-03 10:00", tz="UTC")]  # deferred, still to run
    assert nominal(later, "probe") == []  # a high-priority tick 22 min late is missed, like a cron tick
    done = runs_to_place([hourly], {}, now, "h", {"report|2026-03-03T10:00:00+00:00"}, since=since)
    assert nominal(done, "report") == []  # launched: not planned again
    assert all(r.cpu == 10.0 and r.duration == pd.Timedelta(minutes=10) for r in later)  # the default cost
