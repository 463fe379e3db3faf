"""Python side of benches/train.sh. usage: train_python.py WORKDIR (make|train)"""
import os
import sys
import time

import numpy as np
import xgboost as xgb

work, action = sys.argv[1], sys.argv[2]
path = os.path.join(work, "train.csv")
if action == "make":
    if not os.path.exists(path):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(1_000_000, 28)).astype(np.float32)
        y = x[:, 0] * 2 + np.sin(x[:, 1] * 3) + x[:, 2] * x[:, 3] + rng.normal(scale=0.1, size=len(x))
        np.savetxt(path, np.column_stack([y, x]), fmt="%.6g", delimiter=",")
else:
    start = time.perf_counter()
    d = xgb.DMatrix(f"{path}?format=csv&label_column=0")
    loaded = time.perf_counter()
    xgb.train({"tree_method": "hist", "max_depth": 6, "eta": 0.3, "nthread": 2, "objective": "reg:squarederror"}, d, 100)
    done = time.perf_counter()
    print(f"python xgboost {xgb.__version__}: load {loaded - start:.2f} s, train {done - loaded:.2f} s")
