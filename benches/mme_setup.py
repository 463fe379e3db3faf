"""Make the multi-model benchmark's models, once: 20 distinct XGBoost models of 100 trees
(depth 6, 10 features, UBJSON `xgboost-model` as SageMaker 3.0-5 writes), copied round-robin
into N directories laid out as SageMaker lays out a multi-model endpoint's models
(`models/m0000/model/xgboost-model`), the first also as a single model; and a one-row CSV.
usage: mme_setup.py WORKDIR N"""
import os
import shutil
import sys

import numpy as np
import xgboost as xgb

work, count = sys.argv[1], int(sys.argv[2])
distinct = 20
source = os.path.join(work, "distinct")
os.makedirs(source, exist_ok=True)
rng = np.random.default_rng(0)
x = rng.normal(size=(5_000, 10)).astype(np.float32)
for k in range(distinct):
    path = os.path.join(source, f"{k}.ubj")
    if os.path.exists(path):
        continue
    w = rng.normal(size=10)
    y = x @ w + np.sin(x[:, k % 10]) * 2 + rng.normal(scale=0.1, size=len(x))
    params = {"max_depth": 6, "eta": 0.1, "objective": "reg:squarederror", "seed": k, "nthread": 2}
    xgb.train(params, xgb.DMatrix(x, label=y), 100).save_model(path)

for i in range(count):
    target = os.path.join(work, "models", f"m{i:04d}", "model", "xgboost-model")
    if not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(source, f"{i % distinct}.ubj"), target)
os.makedirs(os.path.join(work, "single"), exist_ok=True)
shutil.copyfile(os.path.join(source, "0.ubj"), os.path.join(work, "single", "xgboost-model"))
with open(os.path.join(work, "one-row.csv"), "w") as f:
    f.write(",".join(f"{v:.6f}" for v in rng.normal(size=10)) + "\n")
