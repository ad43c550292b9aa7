"""Anomaly detection accuracy, held-out beside in-sample (README "Measuring honestly").

1. NAB, leave-one-category-out: for each of the categories under ``--nab-dir/data``, the constants of the
   detector (``anomaly.tuning.GRID``) are chosen on the other categories and the category is scored with
   them (by the selection rule that holds out best among the other categories, ``anomaly.loco``); the
   held-out figure pools those scores. In-sample: the setting chosen on all categories, scored on all (the
   shipped default). Printed per category, for the default detector and a plain z-score baseline, and, for
   comparison, what each selection rule would give if it were fixed in advance. ``--save-counts FILE``
   writes the per-category counts of every setting (the test fixture that checks the shipped default).
2. The simulator: seeds 0-4 were looked at while method ``auto`` was built (*in-sample*); seeds 5-9 were
   not (*held-out*). Each seed is 3 days of the default fleet, scored as the pipeline scores it.

Usage: python benchmarks/bench_detection_heldout.py [--nab-dir ../shared/nab] [--methods auto,ensemble]
       [--skip-nab] [--skip-sim]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rhythm_pipelines.anomaly.evaluate import (  # noqa: E402
    Score,
    by_category,
    category_of,
    grid_counts,
    score_simulation,
)
from rhythm_pipelines.anomaly.loco import RULES, held_out_counts, leave_one_category_out  # noqa: E402
from rhythm_pipelines.anomaly.tuning import DEFAULT, GRID  # noqa: E402
from rhythm_pipelines.simulate import SimConfig, simulate  # noqa: E402

SIM_IN, SIM_OUT = range(0, 5), range(5, 10)
PUBLISHED = {"CAD OSE": (82, 49, 15), "Numenta HTM": (82, 114, 15), "ARTime": (90, 173, 7), "RCF": (76, 294, 21)}


def _row(name: str, s: Score) -> dict:
    return {"set": name, **s.as_dict()}


def _score(c) -> Score:
    return Score(*map(int, c))


def bench_nab(nab: Path, method: str, save_counts: Path | None = None) -> None:
    print(f"== NAB ({nab}), {method}: leave-one-category-out over {len(GRID)} settings")
    t = time.perf_counter()
    keys, counts = grid_counts(nab / "data", nab / "labels" / "combined_windows.json", method)
    cats = [category_of(k) for k in keys]
    categories, per_cat = by_category(counts, keys)
    r = leave_one_category_out(per_cat, categories)
    rows = []
    for cat in categories:
        ins = r.in_sample_by_category[cat]
        row = _row(f"  {cat} ({cats.count(cat)} files)", r.by_category[cat])
        chosen = f"{GRID[r.chosen[cat]].label()} ({r.rules[cat]})"
        rows.append({**row, "in-sample f1": round(ins.f1, 4), "chosen on the others": chosen})
    rows.append({**_row("HELD-OUT pooled", r.held_out), "in-sample f1": round(r.in_sample.f1, 4)})
    chosen_all = GRID[r.in_sample_choice].label()
    rows.append(
        {
            **_row("IN-SAMPLE (chosen on all)", r.in_sample),
            "chosen on the others": f"(all) {chosen_all} ({r.in_sample_rule})",
        }
    )
    for name, rule in RULES.items():
        rows.append(_row(f"held-out if the rule were always {name}", _score(held_out_counts(per_cat, rule))))
    if method == "ensemble":
        for name, c in PUBLISHED.items():
            rows.append(_row(f"published: {name} (fixed settings)", _score(c)))
    print(pd.DataFrame(rows).fillna("").to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if method == "ensemble":
        shipped = "yes" if GRID[r.in_sample_choice] == DEFAULT else f"NO (shipped: {DEFAULT.label()})"
        print(f"shipped default is the in-sample choice: {shipped}")
    print(f"({time.perf_counter() - t:.0f} s)")
    if save_counts:
        labels = [g.label() for g in GRID]
        save_counts.write_text(json.dumps({"categories": categories, "grid": labels, "counts": per_cat.tolist()}))
        print(f"per-category counts of every setting -> {save_counts}")


def bench_sim(methods: list[str], days: float = 3.0) -> None:
    print(f"== simulator, {days:g} days per seed; seeds {SIM_IN.start}-{SIM_IN.stop - 1} in-sample, "
          f"{SIM_OUT.start}-{SIM_OUT.stop - 1} held-out")  # fmt: skip
    rows = []
    for method in methods:
        for label, seeds in (("in-sample", SIM_IN), ("held-out", SIM_OUT)):
            total = Score()
            for seed in seeds:
                sim = simulate(SimConfig(days=days, seed=seed, start=pd.Timestamp("2026-03-02", tz="UTC")))
                total = total + score_simulation(sim, method)[1]
            rows.append(_row(f"{method} {label} seeds {seeds.start}-{seeds.stop - 1}", total))
            print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nab-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "nab")
    parser.add_argument("--methods", default="auto,ensemble")
    parser.add_argument("--skip-nab", action="store_true")
    parser.add_argument("--skip-sim", action="store_true")
    parser.add_argument("--save-counts", type=Path, help="write the ensemble's per-category counts (a test fixture)")
    args = parser.parse_args()
    if not args.skip_nab:
        if (args.nab_dir / "data").is_dir():
            bench_nab(args.nab_dir, "ensemble", args.save_counts)
            bench_nab(args.nab_dir, "zscore")  # the simplest rule a user would try, under the same protocol
        else:
            print(f"no NAB data at {args.nab_dir}/data: pass --nab-dir")
    if not args.skip_sim:
        bench_sim([m.strip() for m in args.methods.split(",")])


if __name__ == "__main__":
    main()
