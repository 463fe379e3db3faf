"""Oracle for the preprocess step's statistics: reads the raw objects itself (csv and shlex,
Python's correctly rounded float()), finds the training rows by their unique labels in
train.csv, and computes with pandas what preprocessing.json should hold.

    python preprocess_stats.py INPUT_DIR TRAIN_CSV PREPROCESSING_JSON    -> prints OK
"""
import csv
import gzip
import json
import math
import os
import shlex
import sys

import pandas as pd

COLUMNS = ["mpg", "cylinders", "displacement", "horsepower", "weight", "acceleration", "model year", "origin", "car name"]
NUMERIC = ["cylinders", "displacement", "horsepower", "weight", "acceleration", "model year"]


def records(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    lines = [line for line in raw.decode().splitlines() if line.strip()]
    rows = [next(csv.reader([line])) if "," in line else shlex.split(line) for line in lines]
    header = COLUMNS
    if rows and rows[0][0] == "mpg":
        header = rows.pop(0)
    return [dict(zip(header, r)) for r in rows]


def main():
    input_dir, train_csv, report_path = sys.argv[1:4]
    rows = []
    for name in sorted(os.listdir(input_dir)):
        rows.extend(records(os.path.join(input_dir, name)))
    number = lambda v: math.nan if v.strip() in ("?", "") else float(v)
    frame = pd.DataFrame(
        {
            **{c: [number(r[c]) for r in rows] for c in ["mpg"] + NUMERIC},
            "origin": [None if r["origin"].strip() in ("?", "") else r["origin"].strip() for r in rows],
        }
    )
    assert frame["mpg"].is_unique, "the labels identify the rows"
    train_labels = [float(line.split(",")[0]) for line in open(train_csv) if line.strip()]
    train = frame[frame["mpg"].isin(set(train_labels))]
    report = json.load(open(report_path))
    problems = []
    if len(train) != len(train_labels) or report["rows"]["train"] != len(train):
        problems.append(f"train rows: pandas {len(train)}, train.csv {len(train_labels)}, report {report['rows']['train']}")
    fitted = {c["name"]: c for c in report["columns"]}
    for column in NUMERIC:
        values = train[column]
        median = values.median()
        imputed = values.fillna(median)
        mean, std = imputed.mean(), imputed.std(ddof=0)
        got = fitted[column]
        if got["median"] != median:
            problems.append(f"{column}: median {got['median']!r}, pandas {median!r}")
        for what, expected in [("mean", mean), ("std", std)]:
            if abs(got[what] - expected) > 1e-12 * max(1.0, abs(expected)):
                problems.append(f"{column}: {what} {got[what]!r}, pandas {expected!r}")
        print(f"{column}: median {median} mean {mean} std {std} ({values.isna().sum()} missing)")
    categories = sorted(train["origin"].dropna().unique(), key=float)
    if fitted["origin"]["categories"] != categories:
        problems.append(f"origin: categories {fitted['origin']['categories']}, pandas {categories}")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
