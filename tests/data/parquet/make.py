"""Make the Parquet training fixture: reg_exact's train and validation sets as Parquet
(label first column, float64 and int64 columns, snappy), as SageMaker's XGBoost reads them.

    ../../../target/python/xgb32/bin/python make.py ../../../../shared/fixtures/training/reg_exact
"""
import sys

import pandas as pd

case = sys.argv[1]
for name in ("train", "validation"):
    frame = pd.read_csv(f"{case}/{name}.csv", header=None)
    frame.columns = ["label"] + [f"f{i}" for i in range(frame.shape[1] - 1)]
    frame["f7"] = frame["f7"].astype("float32")
    frame.to_parquet(f"{name}.parquet", compression="snappy", index=False)
print("ok")
