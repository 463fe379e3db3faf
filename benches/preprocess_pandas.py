"""The same job as the preprocess step, the way the seed pipeline did it with pandas and
scikit-learn: read the CSV, drop rows without a label, shuffle and split 70/15/15 (test
halved), fit median imputation + standard scaling and one-hot encoding on the training
rows, transform every set and write four headerless CSVs (label first; test_set_2 without).

    python preprocess_pandas.py INPUT.csv OUTPUT_DIR
"""
import json
import os
import sys

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["cylinders", "displacement", "horsepower", "weight", "acceleration", "model year"]
CATEGORICAL = ["origin"]
LABEL = "mpg"


def main():
    path, out = sys.argv[1:3]
    frame = pd.read_csv(path, na_values=["?"])
    frame = frame.dropna(subset=[LABEL])
    order = np.random.default_rng(42).permutation(len(frame))
    n_val, n_test = round(len(frame) * 0.15), round(len(frame) * 0.15)
    n_train = len(frame) - n_val - n_test
    n_test_1 = (n_test + 1) // 2
    cuts = np.cumsum([n_train, n_val, n_test_1])
    parts = np.split(order, cuts)
    sets = dict(zip(["train", "validation", "test_set_1", "test_set_2"], (frame.iloc[np.sort(p)] for p in parts)))
    transform = ColumnTransformer(
        [
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), NUMERIC),
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
        ]
    )
    transform.fit(sets["train"])
    for name, rows in sets.items():
        features = pd.DataFrame(transform.transform(rows).astype(np.float32))
        if name != "test_set_2":
            features.insert(0, LABEL, rows[LABEL].to_numpy())
        os.makedirs(os.path.join(out, name), exist_ok=True)
        features.to_csv(os.path.join(out, name, f"{name}.csv"), header=False, index=False)
    os.makedirs(os.path.join(out, "artifacts"), exist_ok=True)
    numeric = transform.named_transformers_["numeric"]
    json.dump(
        {
            "medians": numeric.named_steps["impute"].statistics_.tolist(),
            "means": numeric.named_steps["scale"].mean_.tolist(),
            "stds": numeric.named_steps["scale"].scale_.tolist(),
            "rows": {k: len(v) for k, v in sets.items()},
        },
        open(os.path.join(out, "artifacts", "preprocessing.json"), "w"),
    )


if __name__ == "__main__":
    main()
