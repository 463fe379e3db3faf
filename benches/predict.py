"""Python side of benches/predict.sh: make the model and rows once, then time inplace_predict.

usage: predict.py WORKDIR
"""
import os
import sys
import time

import numpy as np
import xgboost as xgb

work = sys.argv[1]
model_path = os.path.join(work, "xgboost-model")
rows_path = os.path.join(work, "rows.f32")
features = 28
if not os.path.exists(model_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50_000, features)).astype(np.float32)
    y = x[:, 0] * 2 + np.sin(x[:, 1] * 3) + x[:, 2] * x[:, 3] + rng.normal(scale=0.1, size=len(x))
    booster = xgb.train(
        {"max_depth": 6, "eta": 0.1, "tree_method": "hist", "objective": "reg:squarederror", "nthread": 2},
        xgb.DMatrix(x, label=y),
        num_boost_round=100,
    )
    booster.save_model(model_path + ".ubj")
    os.rename(model_path + ".ubj", model_path)
    rows = rng.normal(size=(100_000, features)).astype(np.float32)
    rows[rng.random(size=rows.shape) < 0.05] = np.nan
    rows.tofile(rows_path)

booster = xgb.Booster(model_file=model_path)
booster.set_param({"nthread": os.cpu_count()})
rows = np.fromfile(rows_path, dtype=np.float32).reshape(-1, features)
np.savetxt(os.path.join(work, "python-pred.csv"), booster.inplace_predict(rows[:1000]), fmt="%.9g")
for n, repeats in [(1, 20_000), (1_000, 2_000), (100_000, 20)]:
    batch = rows[:n]
    booster.inplace_predict(batch)
    start = time.perf_counter()
    for _ in range(repeats):
        booster.inplace_predict(batch)
    seconds = time.perf_counter() - start
    print(f"python xgboost {xgb.__version__} inplace_predict  {n:>7} rows: {n * repeats / seconds:>14,.0f} rows/s  ({seconds / repeats * 1e6:,.1f} us per call)")
