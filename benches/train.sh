#!/usr/bin/env bash
# Training beside Python xgboost 3.2.0, in one run: a synthetic 1,000,000 x 28 regression set
# (CSV, label first), hist, depth 6, eta 0.3, 100 rounds, 2 threads. Prints wall time and peak
# memory (max RSS) of each whole process, data loading included.
# Needs scripts/python-xgboost (xgboost 3.2.0 in /opt/xgb32, or PYTHON=...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-/opt/xgb32/bin/python}
work=$PWD/target/bench/train
mkdir -p "$work"
"$python" benches/train_python.py "$work" make
cargo build --release --locked --bin train >/dev/null 2>&1

/usr/bin/time -f '%e %M' -o "$work/python.time" "$python" benches/train_python.py "$work" train 2>/dev/null
read -r py_s py_kib < "$work/python.time"

ml=$(mktemp -d)
trap 'rm -rf "$ml"' EXIT
mkdir -p "$ml/input/config" "$ml/input/data/train"
ln -s "$work/train.csv" "$ml/input/data/train/train.csv"
echo '{"num_round": "100", "max_depth": "6", "eta": "0.3", "tree_method": "hist", "nthread": "2", "objective": "reg:squarederror"}' \
  > "$ml/input/config/hyperparameters.json"
echo '{"train": {"ContentType": "text/csv"}}' > "$ml/input/config/inputdataconfig.json"
SAGESTEP_ML_ROOT=$ml /usr/bin/time -f '%e %M' -o "$work/ours.time" \
  target/x86_64-unknown-linux-musl/release/train --checkpoint-every 100 >/dev/null 2>"$work/ours.log"
read -r our_s our_kib < "$work/ours.time"

printf '%-28s %10s %12s\n' "" "wall time" "peak memory"
printf '%-28s %9.2fs %10.0f MB\n' "python xgboost 3.2.0" "$py_s" "$((py_kib / 1024))"
printf '%-28s %9.2fs %10.0f MB\n' "sagestep train (hessboost)" "$our_s" "$((our_kib / 1024))"
