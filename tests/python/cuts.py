"""XGBoost's hist cut points on generated data sets, for the cuts parity test.

usage: cuts.py OUTDIR

For each case writes OUTDIR/<case>/: X.f32 (rows x cols, little-endian float32, row-major,
NaN = missing), w.f32 (weights, when weighted), case.json (rows, cols, max_bin) and
cuts.json (XGBoost's `get_quantile_cut()`: per feature the min value and the cuts, as
float32 bit patterns).
"""
import json
import os
import sys

import numpy as np
import xgboost as xgb

out = sys.argv[1]
rng = np.random.default_rng(20261130)


def with_nan(x, fraction):
    x = x.copy()
    x[rng.random(len(x)) < fraction] = np.nan
    return x


def positive_zero(x):
    # np.round makes -0.0 from small negatives; XGBoost's choice between -0.0 and +0.0
    # depends on its sort (spec section 7), so the data holds +0.0 only.
    return x + 0.0


def cases():
    n = 100
    yield "rows_100", np.column_stack([rng.normal(size=n), rng.exponential(size=n)]), None, 256
    n = 2_000_000
    yield "rows_2m_nan", np.column_stack([
        with_nan(rng.normal(size=n), 0.1),
        with_nan(rng.lognormal(sigma=2, size=n), 0.3),
        rng.integers(0, 5000, size=n).astype(float),
    ]), None, 256
    n = 300_000
    w = rng.uniform(0, 2, size=n)
    w[rng.random(n) < 0.05] = 0
    yield "weighted_maxbin16", np.column_stack([
        with_nan(rng.normal(size=n), 0.15),
        rng.integers(0, 20_000, size=n).astype(float),
        positive_zero(np.round(rng.lognormal(size=n), 1)),
    ]), w, 16
    n = 200_000
    yield "constant_and_few_maxbin1024", np.column_stack([
        np.full(n, 3.5),
        rng.integers(0, 5, size=n).astype(float),
        rng.exponential(size=n),
        with_nan(rng.normal(size=n), 1.0),
    ]), None, 1024
    n = 50_000
    yield "weighted_exp_maxbin64", np.column_stack([
        rng.standard_t(3, size=n),
        rng.uniform(-5, 5, size=n),
    ]), rng.exponential(size=n), 64
    n = 1_000_000
    yield "gamma_nan_maxbin1024", np.column_stack([
        with_nan(rng.gamma(0.5, size=n), 0.3),
        positive_zero(np.round(rng.normal(size=n) * 3, 3)),
    ]), None, 1024


for name, x, w, max_bin in cases():
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    x = np.ascontiguousarray(x, dtype=np.float32)
    x.tofile(os.path.join(d, "X.f32"))
    if w is not None:
        np.asarray(w, dtype=np.float32).tofile(os.path.join(d, "w.f32"))
    dm = xgb.DMatrix(x, label=np.zeros(len(x)), weight=w, nthread=1)
    xgb.train({"tree_method": "hist", "max_bin": max_bin, "nthread": 1, "max_depth": 1}, dm, 1)
    indptr, data = dm.get_quantile_cut()
    data = np.asarray(data, dtype=np.float32)
    features = []
    for f in range(x.shape[1]):
        values = data[indptr[f]:indptr[f + 1]]
        features.append([int(v) for v in values.view(np.uint32)])
    json.dump({"rows": len(x), "cols": x.shape[1], "max_bin": max_bin, "weighted": w is not None},
              open(os.path.join(d, "case.json"), "w"))
    json.dump(features, open(os.path.join(d, "cuts.json"), "w"))
    print(name, len(x), "rows", [len(f) - 1 for f in features], "cuts", flush=True)
