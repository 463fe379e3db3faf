"""Python side of benches/train.sh.

usage: train_python.py make WORKDIR ROWS      writes train-ROWS.csv and validation-ROWS.csv
       train_python.py make-int WORKDIR ROWS  the same with integer features (shorter rows)
       train_python.py train WORKDIR ROWS     trains as the built-in does (text loader, train
                                              and validation evaluated every round)
"""
import os
import sys
import time

import numpy as np

action, work, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
train = os.path.join(work, f"train-{rows}.csv")
validation = os.path.join(work, f"validation-{rows}.csv")


def write(path, n, seed, integers=False):
    """n x 28 synthetic regression rows, label first, in chunks: %.6g text, or with
    integers=True features rounded to integers (about 100 bytes a row, for the ~10 GB file)."""
    rng = np.random.default_rng(seed)
    tmp = path + ".partial"
    with open(tmp, "w") as f:
        for start in range(0, n, 500_000):
            m = min(500_000, n - start)
            x = rng.normal(size=(m, 28)).astype(np.float32)
            if integers:
                x = np.round(x * 10)
            y = x[:, 0] * 2 + np.sin(x[:, 1] * 3) + x[:, 2] * x[:, 3] + rng.normal(scale=0.1, size=m)
            fmt = ["%.3f"] + ["%d"] * 28 if integers else "%.6g"
            np.savetxt(f, np.column_stack([y, x]), fmt=fmt, delimiter=",")
    os.rename(tmp, path)


if action in ("make", "make-int"):
    integers = action == "make-int"
    if not os.path.exists(train):
        write(train, rows, 0, integers)
    if not os.path.exists(validation):
        write(validation, max(rows // 10, 1000), 1, integers)
else:
    import xgboost as xgb

    start = time.perf_counter()
    dtrain = xgb.DMatrix(f"{train}?format=csv&label_column=0")
    dval = xgb.DMatrix(f"{validation}?format=csv&label_column=0")
    loaded = time.perf_counter()
    params = {"tree_method": "hist", "max_depth": 6, "eta": 0.3, "nthread": 2,
              "objective": "reg:squarederror", "eval_metric": "rmse"}
    xgb.train(params, dtrain, 100, evals=[(dtrain, "train"), (dval, "validation")], verbose_eval=False)
    done = time.perf_counter()
    print(f"python xgboost {xgb.__version__}: load {loaded - start:.2f} s, train {done - loaded:.2f} s")
