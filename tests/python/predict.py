"""Load a model with Python xgboost and print its predictions, for interoperability tests.

usage: predict.py MODEL X.csv OUT.csv   (X.csv: no header, empty field = missing)
"""
import sys

import numpy as np
import xgboost as xgb

model_path, x_path, out_path = sys.argv[1:4]
booster = xgb.Booster(model_file=model_path)
rows = [
    [float(v) if v != "" else np.nan for v in line.rstrip("\n").split(",")]
    for line in open(x_path)
    if line.strip()
]
x = np.asarray(rows, dtype=np.float32)
pred = booster.predict(xgb.DMatrix(x, missing=np.nan))
np.savetxt(out_path, pred.reshape(len(x), -1), fmt="%.9g", delimiter=",")
print(xgb.__version__)
