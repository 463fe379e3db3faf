"""Predict with Python xgboost on a data file read by XGBoost's own loader (a URI such as
`test.libsvm?format=libsvm`); prints the version, writes one prediction per line (%.9g).

usage: predict_uri.py MODEL URI OUT
"""
import sys

import numpy as np
import xgboost as xgb

model, uri, out = sys.argv[1:4]
pred = xgb.Booster(model_file=model).predict(xgb.DMatrix(uri))
np.savetxt(out, pred.reshape(-1), fmt="%.9g")
print(xgb.__version__)
