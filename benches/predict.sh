#!/usr/bin/env bash
# Prediction throughput, sagestep beside Python xgboost's inplace_predict, in one run, on one
# 100-tree depth-6 model (28 features, 5% missing) at 1, 1,000 and 100,000 rows.
# Needs scripts/python-xgboost (xgboost 3.2.0 in target/python/xgb32, or PYTHON=...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-$PWD/target/python/xgb32/bin/python}
work=target/bench/predict
mkdir -p "$work"
"$python" benches/predict.py "$work"
cargo bench --locked --bench predict -- "$work" 2>/dev/null | grep -v '^$'
