"""Make the extra model fixtures (objectives, DART, categorical splits) with a real xgboost.

    ../../../target/python/xgb32/bin/python make.py     # writes ./3.2.0/<case>/
    ../../../target/python/xgb17/bin/python make.py     # writes ./1.7.6/<case>/ (legacy binary as xgboost-model)

Each case: model.json, xgboost-model (what save_model writes without an extension), X.csv
(no header; empty = missing; categories as codes), pred.csv, margin.csv (9 significant digits).
"""
import os

import numpy as np
import xgboost as xgb

version = xgb.__version__
rng = np.random.default_rng(42)
n, f = 120, 4
x = rng.normal(size=(n, f)).astype(np.float32)
x[rng.random(size=x.shape) < 0.1] = np.nan
base = np.nan_to_num(x[:, 0]) * 1.5 - np.nan_to_num(x[:, 1]) + np.sin(np.nan_to_num(x[:, 2]))
cases = {
    "dart": ({"objective": "reg:squarederror", "booster": "dart", "rate_drop": 0.3, "skip_drop": 0.0, "max_depth": 3}, base),
    "count_poisson": ({"objective": "count:poisson", "max_depth": 3}, rng.poisson(np.exp(np.clip(base, -2, 2)))),
    "reg_gamma": ({"objective": "reg:gamma", "max_depth": 3}, np.exp(np.clip(base, -2, 2)) + 0.1),
    "reg_tweedie": ({"objective": "reg:tweedie", "max_depth": 3}, np.maximum(base, 0)),
    "reg_logistic": ({"objective": "reg:logistic", "max_depth": 3}, 1 / (1 + np.exp(-np.nan_to_num(base)))),
    "binary_logitraw": ({"objective": "binary:logitraw", "max_depth": 3}, (base > 0).astype(float)),
    "binary_hinge": ({"objective": "binary:hinge", "max_depth": 3}, (base > 0).astype(float)),
    "multi_softmax": ({"objective": "multi:softmax", "num_class": 3, "max_depth": 3}, np.digitize(base, [-1, 1])),
}
if int(version.split(".")[0]) >= 3:
    cases["categorical"] = ({"objective": "reg:squarederror", "max_depth": 3, "max_cat_to_onehot": 1}, None)

for name, (params, y) in cases.items():
    features = x.copy()
    types = None
    if name == "categorical":
        features[:, 3] = rng.integers(0, 6, size=n).astype(np.float32)
        y = base + np.where(np.isin(features[:, 3], [1, 4]), 3.0, -1.0)
        types = ["q", "q", "q", "c"]
    d = xgb.DMatrix(features, label=y, missing=np.nan, feature_types=types, enable_categorical=types is not None)
    params = dict(params, eta=0.3, nthread=1, seed=0, tree_method="hist")
    booster = xgb.train(params, d, num_boost_round=12)
    out = os.path.join(version, name)
    os.makedirs(out, exist_ok=True)
    booster.save_model(os.path.join(out, "model.json"))
    booster.save_model(os.path.join(out, "xgboost-model"))
    test = xgb.DMatrix(features, missing=np.nan, feature_types=types, enable_categorical=types is not None)
    pred = booster.predict(test).reshape(n, -1)
    margin = booster.predict(test, output_margin=True).reshape(n, -1)
    np.savetxt(os.path.join(out, "pred.csv"), pred, fmt="%.9g", delimiter=",")
    np.savetxt(os.path.join(out, "margin.csv"), margin, fmt="%.9g", delimiter=",")
    with open(os.path.join(out, "X.csv"), "w") as fh:
        for row in features:
            fh.write(",".join("" if np.isnan(v) else repr(float(v)) for v in row) + "\n")
print(version, sorted(cases))
