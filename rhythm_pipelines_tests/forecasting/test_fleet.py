"""Training a fleet from statsforecast's long shape, in parallel processes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.forecasting.fleet import train_fleet
from rhythm_pipelines_tests.forecasting.conftest import daily_sine, noisy_level

MODELS = ("naive", "median", "ets")


def _long(series: dict[str, pd.Series]) -> pd.DataFrame:
    return pd.concat(
        [pd.DataFrame({"unique_id": uid, "ds": s.index, "y": s.to_numpy()}) for uid, s in series.items()],
        ignore_index=True,
    )


def test_every_series_of_a_long_frame_is_trained_and_a_bad_one_is_reported():
    frame = _long({"a": noisy_level(600, seed=1), "b": daily_sine(days=2.5, noise=1.0), "short": noisy_level(10)})
    frame = frame.sample(frac=1.0, random_state=0)  # any row order: each series is sorted by ds
    seen = []
    res = train_fleet(frame, 12, MODELS, n_jobs=2, progress=lambda done, total: seen.append((done, total)))
    assert set(res.trained) == {"a", "b"} and set(res.errors) == {"short"}
    assert "too short" in res.errors["short"] and seen[-1] == (3, 3)
    a = res.trained["a"]
    assert a.meta["train_points"] == 600 and a.meta["model"] in {*MODELS, "ensemble"}
    assert a.meta["last_ts"] == noisy_level(600).index[-1].isoformat()
    # the same fleet through another executor (the hook for dask/ray) gives the same choices
    with ThreadPoolExecutor(2) as pool:
        again = train_fleet(frame, 12, MODELS, executor=pool)
    assert {k: t.meta["model"] for k, t in again.trained.items()} == {
        k: t.meta["model"] for k, t in res.trained.items()
    }
    np.testing.assert_allclose(again.trained["b"].model.forecast().mean, res.trained["b"].model.forecast().mean)
    with pytest.raises(ValueError, match="missing y"):
        train_fleet(frame.drop(columns="y"), 12)
