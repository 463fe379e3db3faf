"""Independent oracle for the model-quality metrics (tests/it/model_quality.rs): scikit-learn.

    model_quality_oracle.py DATA.csv PROBLEM_TYPE TRUTH PREDICTION [PROBABILITY THRESHOLD]

DATA.csv has a header; the columns are named. Prints one JSON object: every scalar metric of
Model Monitor's statistics.json as {"value", "standard_deviation"} (the deviation over the five
80% subsamples that src/monitor/model_quality/metric.rs defines: row i is in subsample s when
splitmix64(SEED ^ (8 i + s)) >> 11 < IN_SAMPLE_BELOW; sample standard deviation, ddof=1; null
below 200 rows), the confusion matrix {actual: {predicted: n}}, and for binary problems
scikit-learn's ROC curve and reversed precision-recall curve (drop_intermediate=False).
"""
import json
import sys

import numpy as np
import pandas as pd
from sklearn import metrics as skm

SEED = 0x5347_5354_4550_4D51
IN_SAMPLE_BELOW = 7_205_759_403_792_793
SUBSAMPLES = 5
MASK = (1 << 64) - 1


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def subsamples(n):
    return [np.array([splitmix64(SEED ^ ((8 * i + s) & MASK)) >> 11 < IN_SAMPLE_BELOW for i in range(n)])
            for s in range(SUBSAMPLES)]


def with_deviation(fn, n, masks, *columns):
    value = float(fn(*columns))
    if n < 200:
        return {"value": value, "standard_deviation": None}
    samples = [float(fn(*(c[m] for c in columns))) for m in masks]
    return {"value": value, "standard_deviation": float(np.std(samples, ddof=1))}


def regression(y, p):
    return {
        "mae": skm.mean_absolute_error,
        "mse": skm.mean_squared_error,
        "rmse": skm.root_mean_squared_error,
        "r2": skm.r2_score,
    }, (y, p)


def binary_scalars():
    ones = lambda y: np.ones_like(y)
    rate = lambda num, den: num / den if den else 0.0

    def fpr(y, p):
        tn, fp, _, _ = skm.confusion_matrix(y, p, labels=[0, 1]).ravel()
        return rate(fp, fp + tn)

    return {
        "recall": lambda y, p, s: skm.recall_score(y, p, zero_division=0),
        "precision": lambda y, p, s: skm.precision_score(y, p, zero_division=0),
        "accuracy": lambda y, p, s: skm.accuracy_score(y, p),
        "recall_best_constant_classifier": lambda y, p, s: skm.recall_score(y, ones(y), zero_division=0),
        "precision_best_constant_classifier": lambda y, p, s: skm.precision_score(y, ones(y), zero_division=0),
        "accuracy_best_constant_classifier": lambda y, p, s: skm.accuracy_score(y, ones(y)),
        "true_positive_rate": lambda y, p, s: skm.recall_score(y, p, zero_division=0),
        "true_negative_rate": lambda y, p, s: 1.0 - fpr(y, p),
        "false_positive_rate": lambda y, p, s: fpr(y, p),
        "false_negative_rate": lambda y, p, s: 1.0 - skm.recall_score(y, p, zero_division=0),
        "auc": lambda y, p, s: skm.roc_auc_score(y, s),
        "f0_5": lambda y, p, s: skm.fbeta_score(y, p, beta=0.5, zero_division=0),
        "f1": lambda y, p, s: skm.f1_score(y, p, zero_division=0),
        "f2": lambda y, p, s: skm.fbeta_score(y, p, beta=2.0, zero_division=0),
        "f0_5_best_constant_classifier": lambda y, p, s: skm.fbeta_score(y, ones(y), beta=0.5, zero_division=0),
        "f1_best_constant_classifier": lambda y, p, s: skm.f1_score(y, ones(y), zero_division=0),
        "f2_best_constant_classifier": lambda y, p, s: skm.fbeta_score(y, ones(y), beta=2.0, zero_division=0),
    }


def multiclass_scalars(best):
    const = lambda y: np.full_like(y, best)
    weighted = lambda fn, **kw: (lambda y, p: fn(y, p, average="weighted", zero_division=0, **kw))
    out = {
        "accuracy": skm.accuracy_score,
        "weighted_recall": weighted(skm.recall_score),
        "weighted_precision": weighted(skm.precision_score),
        "weighted_f0_5": weighted(skm.fbeta_score, beta=0.5),
        "weighted_f1": weighted(skm.f1_score),
        "weighted_f2": weighted(skm.fbeta_score, beta=2.0),
    }
    for name, fn in list(out.items()):
        out[f"{name}_best_constant_classifier"] = (lambda fn: lambda y, p: fn(y, const(y)))(fn)
    return out


def confusion(y, p, labels):
    matrix = skm.confusion_matrix(y, p, labels=labels)
    return {str(a): {str(b): int(matrix[i][j]) for j, b in enumerate(labels)} for i, a in enumerate(labels)}


def main():
    path, problem, truth, prediction = sys.argv[1:5]
    frame = pd.read_csv(path)
    n = len(frame)
    masks = subsamples(n)
    out = {}
    if problem == "Regression":
        fns, columns = regression(frame[truth].to_numpy(float), frame[prediction].to_numpy(float))
    elif problem == "BinaryClassification":
        y = frame[truth].to_numpy(int)
        if len(sys.argv) > 5:
            score = frame[sys.argv[5]].to_numpy(float)
            threshold = float(sys.argv[6])
            p = frame[prediction].to_numpy(int) if prediction != "-" else (score > threshold).astype(int)
        else:
            p = frame[prediction].to_numpy(int)
            score = p.astype(float)
        fns, columns = binary_scalars(), (y, p, score)
        out["confusion_matrix"] = confusion(y, p, [0, 1])
        fpr, tpr, _ = skm.roc_curve(y, score, drop_intermediate=False)
        precision, recall, _ = skm.precision_recall_curve(y, score, drop_intermediate=False)
        out["roc"] = {"false_positive_rates": fpr.tolist(), "true_positive_rates": tpr.tolist()}
        out["pr"] = {"precisions": precision[::-1].tolist(), "recalls": recall[::-1].tolist()}
    elif problem == "MulticlassClassification":
        y = frame[truth].to_numpy(int)
        p = frame[prediction].to_numpy(int)
        labels = sorted(set(y.tolist()) | set(p.tolist()))
        fns, columns = multiclass_scalars(labels[-1]), (y, p)
        out["confusion_matrix"] = confusion(y, p, labels)
    else:
        sys.exit(f"unknown problem type {problem}")
    for name, fn in fns.items():
        out[name] = with_deviation(fn, n, masks, *columns)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
