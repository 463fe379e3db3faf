"""Deterministic hist trainings as SageMaker's built-in XGBoost runs them, for the parity test.

usage: hist_parity.py make OUTDIR
           For each case writes OUTDIR/<case>/ml (an /opt/ml input tree: channels and
           configuration), and XGBoost 3.2's own training of it: xgb.json.
       hist_parity.py compare CASEDIR MODEL
           Loads MODEL (ours) and xgb.json in this xgboost; prints a JSON verdict: rounds,
           best_iteration/best_score attributes, predictions on the validation channel
           (read by XGBoost's text loader) and trees compared.

XGBoost reads the channels as the built-in does: DMatrix("<file>?format=csv&label_column=0")
(weights in column 1 with csv_weights) or "?format=libsvm", one thread, and with
early_stopping_rounds, EarlyStopping(save_best=True) on the last validation metric.
"""
import json
import os
import sys

import numpy as np
import xgboost as xgb


def csv_text(y, X, w=None):
    lines = []
    for i in range(len(y)):
        cols = [repr(float(y[i]))] + ([repr(float(w[i]))] if w is not None else [])
        cols += ["" if np.isnan(v) else repr(float(v)) for v in X[i]]
        lines.append(",".join(cols))
    return "\n".join(lines) + "\n"


def libsvm_text(y, X, index):
    lines = []
    for i in range(len(y)):
        cols = [repr(float(y[i]))]
        cols += [f"{index[j]}:{float(v)!r}" for j, v in enumerate(X[i]) if not np.isnan(v)]
        lines.append(" ".join(cols))
    return "\n".join(lines) + "\n"


def uri(path, libsvm, weighted):
    if libsvm:
        return f"{path}?format=libsvm"
    return f"{path}?format=csv&label_column=0" + ("&weight_column=1" if weighted else "")


def make(out):
    rng = np.random.default_rng(7)
    n, nv = 3000, 600

    def features(m):
        x = rng.normal(size=(m, 6))
        x[:, 2] = np.round(x[:, 2] * 3) + 0.0
        x[:, 5] = rng.exponential(size=m)
        return x

    X, Xv = features(n), features(nv)
    target = lambda x: x[:, 0] * 2 + np.sin(x[:, 1] * 3) + x[:, 2] ** 2 * 0.3
    y, yv = target(X) + rng.normal(size=n) * 0.3, target(Xv)
    Xm, Xvm = X.copy(), Xv.copy()
    Xm[rng.random(Xm.shape) < 0.2] = np.nan
    Xvm[rng.random(Xvm.shape) < 0.2] = np.nan
    base = {"tree_method": "hist", "objective": "reg:squarederror", "max_depth": "4", "eta": "0.3",
            "eval_metric": "rmse", "num_round": "20"}
    yb, yvb = (y > 0.5).astype(float), (yv > 0.5).astype(float)
    yc, yvc = np.digitize(y, [-1, 1]).astype(float), np.digitize(yv, [-1, 1]).astype(float)
    ypos, yvpos = np.exp(y * 0.3), np.exp(yv * 0.3)
    cases = {
        "dense": (X, y, Xv, yv, base, None),
        "missing": (Xm, y, Xvm, yv, base, None),
        "weights": (Xm, y, Xvm, yv, base, rng.uniform(0.1, 3, n)),
        "regularised": (Xm, y, Xvm, yv, {**base, "alpha": "2.5", "lambda": "0.3", "gamma": "1",
                                          "min_child_weight": "6", "max_delta_step": "0.7"}, None),
        "lossguide": (Xm, y, Xvm, yv, {**base, "grow_policy": "lossguide", "max_leaves": "11",
                                        "max_depth": "0"}, None),
        "max_bin_16": (Xm, y, Xvm, yv, {**base, "max_bin": "16"}, None),
        "max_bin_1024": (Xm, y, Xvm, yv, {**base, "max_bin": "1024", "max_depth": "6"}, None),
        "deep": (Xm, y, Xvm, yv, {**base, "max_depth": "10", "min_child_weight": "0", "num_round": "8"}, None),
        "monotone": (X, y, Xv, yv, {**base, "monotone_constraints": "(1,0,0,0,0,-1)"}, None),
        "binary": (Xm, yb, Xvm, yvb, {**base, "objective": "binary:logistic", "eval_metric": "logloss"}, None),
        "binary_logitraw": (Xm, yb, Xvm, yvb, {**base, "objective": "binary:logitraw", "eval_metric": "logloss",
                                                "scale_pos_weight": "2"}, None),
        "multiclass": (Xm, yc, Xvm, yvc, {**base, "objective": "multi:softprob", "num_class": "3",
                                           "eval_metric": "mlogloss", "num_round": "10"}, None),
        "gamma": (Xm, ypos, Xvm, yvpos, {**base, "objective": "reg:gamma", "eval_metric": "gamma-nloglik"}, None),
        "poisson": (Xm, np.round(ypos), Xvm, np.round(yvpos),
                    {**base, "objective": "count:poisson", "eval_metric": "poisson-nloglik"}, None),
        "tweedie": (Xm, np.round(ypos), Xvm, np.round(yvpos),
                    {**base, "objective": "reg:tweedie", "tweedie_variance_power": "1.3"}, None),
        "early_stopping": (Xm, y, Xvm, yv, {**base, "num_round": "300", "early_stopping_rounds": "10",
                                             "max_depth": "5"}, None),
        "early_stopping_binary": (Xm, yb, Xvm, yvb, {**base, "objective": "binary:logistic", "num_round": "300",
                                                      "eval_metric": "error,logloss", "early_stopping_rounds": "5",
                                                      "eta": "0.5"}, None),
    }
    for name, (Xt, yt, Xval, yval, hp, w) in cases.items():
        write_case(os.path.join(out, name), Xt, yt, Xval, yval, hp, w, None)
    # Sparse libsvm rows over spread-out (hashed) feature indices.
    index = [3, 40, 977, 20_000, 65_537, 1_000_003]
    write_case(os.path.join(out, "libsvm_sparse"), Xm, y, Xvm, yv, base, None, index)


def write_case(d, X, y, Xv, yv, hp, w, libsvm_index):
    ml = os.path.join(d, "ml")
    for c in ("train", "validation"):
        os.makedirs(os.path.join(ml, "input/data", c), exist_ok=True)
    os.makedirs(os.path.join(ml, "input/config"), exist_ok=True)
    libsvm = libsvm_index is not None
    ext = "libsvm" if libsvm else "csv"
    paths = {}
    for c, (Xc, yc, wc) in {"train": (X, y, w), "validation": (Xv, yv, None if w is None else np.ones(len(yv)))}.items():
        paths[c] = os.path.join(ml, "input/data", c, f"{c}.{ext}")
        text = libsvm_text(yc, Xc, libsvm_index) if libsvm else csv_text(yc, Xc, wc)
        open(paths[c], "w").write(text)
    hp = dict(hp)
    if w is not None:
        hp["csv_weights"] = "1"
    json.dump(hp, open(os.path.join(ml, "input/config/hyperparameters.json"), "w"))
    content = "text/libsvm" if libsvm else "text/csv"
    json.dump({c: {"ContentType": content} for c in ("train", "validation")},
              open(os.path.join(ml, "input/config/inputdataconfig.json"), "w"))

    dtrain = xgb.DMatrix(uri(paths["train"], libsvm, w is not None))
    dval = xgb.DMatrix(uri(paths["validation"], libsvm, w is not None))
    params = {k: v for k, v in hp.items() if k not in ("num_round", "early_stopping_rounds", "csv_weights")}
    params["eval_metric"] = params["eval_metric"].split(",")
    params["nthread"] = 1
    callbacks = []
    if "early_stopping_rounds" in hp:
        callbacks.append(xgb.callback.EarlyStopping(rounds=int(hp["early_stopping_rounds"]), data_name="validation",
                                                    metric_name=params["eval_metric"][-1], save_best=True))
    bst = xgb.train(params, dtrain, int(hp["num_round"]), evals=[(dtrain, "train"), (dval, "validation")],
                    verbose_eval=False, callbacks=callbacks)
    bst.save_model(os.path.join(d, "xgb.json"))
    json.dump({"libsvm": libsvm, "weighted": w is not None}, open(os.path.join(d, "case.json"), "w"))


def trees(booster):
    model = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]
    return model["trees"]


def compare(d, model_path):
    case = json.load(open(os.path.join(d, "case.json")))
    ext = "libsvm" if case["libsvm"] else "csv"
    dval = xgb.DMatrix(uri(os.path.join(d, "ml/input/data/validation", f"validation.{ext}"), case["libsvm"],
                           case["weighted"]))
    ours = xgb.Booster(model_file=model_path)
    a = ours.predict(dval).reshape(-1)
    verdict = {"xgboost": xgb.__version__, "rounds": ours.num_boosted_rounds(), "attributes": ours.attributes(),
               "predictions": [int(v) for v in a.view(np.uint32)]}
    if xgb.__version__.startswith("3."):
        theirs = xgb.Booster(model_file=os.path.join(d, "xgb.json"))
        b = theirs.predict(dval).reshape(-1)
        verdict["xgboost_rounds"] = theirs.num_boosted_rounds()
        verdict["xgboost_attributes"] = theirs.attributes()
        verdict["predictions_differ"] = int(np.sum(a.view(np.uint32) != b.view(np.uint32)))
        verdict["max_relative_difference"] = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6)))
        keys = ["left_children", "right_children", "split_indices", "split_conditions", "default_left",
                "base_weights", "sum_hessian", "loss_changes"]
        t_ours, t_theirs = trees(ours), trees(theirs)
        verdict["trees"] = [len(t_ours), len(t_theirs)]
        verdict["trees_differ"] = [i for i, (p, q) in enumerate(zip(t_ours, t_theirs))
                                   if any(p[k] != q[k] for k in keys)]
    print(json.dumps(verdict))


if sys.argv[1] == "make":
    make(sys.argv[2])
else:
    compare(sys.argv[2], sys.argv[3])
