"""Train with Python xgboost on label-first CSV channels; print the last validation RMSE.

usage: train_compare.py TRAIN.csv VALIDATION.csv HYPERPARAMETERS.json
"""
import json
import sys

import numpy as np
import xgboost as xgb

train, validation, hp_path = sys.argv[1:4]
hp = json.load(open(hp_path))
rounds = int(hp.pop("num_round"))
hp.pop("_tuning_objective_metric", None)
params = {k: (float(v) if k not in ("objective", "tree_method", "eval_metric") else v) for k, v in hp.items()}
for k in ("max_depth", "seed"):
    if k in params:
        params[k] = int(params[k])
t = np.loadtxt(train, delimiter=",", ndmin=2)
v = np.loadtxt(validation, delimiter=",", ndmin=2)
dt, dv = xgb.DMatrix(t[:, 1:], label=t[:, 0]), xgb.DMatrix(v[:, 1:], label=v[:, 0])
result = {}
xgb.train(params, dt, rounds, evals=[(dt, "train"), (dv, "validation")], evals_result=result, verbose_eval=False)
print(result["validation"]["rmse"][-1])
