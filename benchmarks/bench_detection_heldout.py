"""Anomaly detection accuracy, in-sample beside held-out (README "Measuring honestly").

1. NAB: the 24 files whose results chose the record threshold's constants (realAWSCloudwatch, realTraffic)
   are *in-sample*; the 22 files added later (realAdExchange, realTweets, artificialWithAnomaly), scored with
   the same default settings, are *held-out*. Window P/R/F1 per split and per category.
2. The simulator: seeds 0-4 were looked at while method ``auto`` was built (*in-sample*); seeds 5-9 were
   not (*held-out*). Each seed is 3 days of the default fleet, scored as the pipeline scores it.

Usage: python benchmarks/bench_detection_heldout.py [--nab-dir ../shared/nab] [--methods auto,ensemble]
       [--skip-nab] [--skip-sim]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rhythm_pipelines.anomaly.evaluate import Score, evaluate_nab, score_simulation  # noqa: E402
from rhythm_pipelines.simulate import SimConfig, simulate  # noqa: E402

IN_SAMPLE = ("realAWSCloudwatch", "realTraffic")
HELD_OUT = ("realAdExchange", "realTweets", "artificialWithAnomaly")
SIM_IN, SIM_OUT = range(0, 5), range(5, 10)


def _row(name: str, s: Score) -> dict:
    return {"set": name, **s.as_dict()}


def bench_nab(nab: Path) -> None:
    print(f"== NAB ({nab}), method ensemble (a CSV of unknown meaning), default settings")
    t = time.perf_counter()
    files, _ = evaluate_nab(nab / "data", nab / "labels" / "combined_windows.json", "ensemble")
    files["category"] = files["file"].str.split("/").str[0]
    rows = []
    for label, cats in (
        ("in-sample (24 files that chose the constants)", IN_SAMPLE),
        ("held-out (22 files)", HELD_OUT),
    ):
        part = files[files["category"].isin(cats)]
        s = Score(int(part["tp"].sum()), int(part["fp"].sum()), int(part["fn"].sum()))
        rows.append(_row(f"{label}: {len(part)} files", s))
        for cat in cats:
            c = part[part["category"] == cat]
            rows.append(
                _row(f"  {cat}: {len(c)} files", Score(int(c["tp"].sum()), int(c["fp"].sum()), int(c["fn"].sum())))
            )
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"({time.perf_counter() - t:.0f} s)")


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
    args = parser.parse_args()
    if not args.skip_nab:
        if (args.nab_dir / "data").is_dir():
            bench_nab(args.nab_dir)
        else:
            print(f"no NAB data at {args.nab_dir}/data: pass --nab-dir")
    if not args.skip_sim:
        bench_sim([m.strip() for m in args.methods.split(",")])


if __name__ == "__main__":
    main()
