"""Make the serve benchmark's model (50 trees, depth 5, 9 features, as the reference figures)
and payloads (one row and 1000 rows of CSV), once. usage: serve_setup.py WORKDIR"""
import os
import sys

import numpy as np
import xgboost as xgb

work = sys.argv[1]
os.makedirs(os.path.join(work, "model"), exist_ok=True)
model = os.path.join(work, "model", "xgboost-model")
if not os.path.exists(model):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 9)).astype(np.float32)
    y = x[:, 0] * 3 + x[:, 1] * x[:, 2] + np.sin(x[:, 3]) + rng.normal(scale=0.1, size=len(x))
    booster = xgb.train({"max_depth": 5, "eta": 0.2, "objective": "reg:squarederror"}, xgb.DMatrix(x, label=y), 50)
    booster.save_model(model + ".ubj")
    os.rename(model + ".ubj", model)
    rows = rng.normal(size=(1000, 9)).astype(np.float32)
    for name, n in [("one-row.csv", 1), ("1000-rows.csv", 1000)]:
        with open(os.path.join(work, name), "w") as f:
            f.write("\n".join(",".join(f"{v:.6f}" for v in r) for r in rows[:n]) + "\n")
