#!/usr/bin/env bash
# Training beside Python xgboost 3.2.0 in one run, both doing the built-in algorithm's work:
# CSV channels read by the text loader, hist, depth 6, eta 0.3, 100 rounds, 2 threads, rmse
# on train and validation every round. Synthetic n x 28 regression data (label first, %.6g
# text; validation n/10 rows), generated here into target/bench/train, never committed.
# Prints wall time, peak memory (max RSS, data loading included) and memory / input size.
#
#   benches/train.sh                 1,000,000 and 10,000,000 rows
#   benches/train.sh 1000000         the sizes given
#   benches/train.sh --big           also ~10 GB: 100,000,000 rows of integer features (a 10M-row
#                                    file ten times), validation 10M rows
#
# Needs Python xgboost 3.2.0 (scripts/python-xgboost installs it into target/python).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-$PWD/target/python/xgb32/bin/python}
work=$PWD/target/bench/train
mkdir -p "$work"
big=0
sizes=()
for arg in "$@"; do
  case $arg in
    --big) big=1 ;;
    *) sizes+=("$arg") ;;
  esac
done
[ "${#sizes[@]}" -gt 0 ] || sizes=(1000000 10000000)
cargo build --release --locked --bin train >/dev/null 2>&1
bin=$PWD/target/x86_64-unknown-linux-musl/release/train

make_big() {
  # ~10 GB: 100M rows of integer features (about 100 bytes a row), made as ten copies of a
  # 10M-row file (the bench needs size; writing 2.9 billion numbers from Python takes hours).
  local small=$work/int/train-10000000.csv
  mkdir -p "$work/int"
  "$python" benches/train_python.py make-int "$work/int" 10000000
  if [ ! -f "$work/train-100000000.csv" ]; then
    for _ in $(seq 10); do cat "$small"; done > "$work/train-100000000.csv.partial"
    mv "$work/train-100000000.csv.partial" "$work/train-100000000.csv"
  fi
  [ -f "$work/validation-100000000.csv" ] || cp "$small" "$work/validation-100000000.csv"
}

ours() {
  local rows=$1 ml
  ml=$(mktemp -d)
  mkdir -p "$ml/input/config" "$ml/input/data/train" "$ml/input/data/validation"
  ln "$work/train-$rows.csv" "$ml/input/data/train/train.csv"
  ln "$work/validation-$rows.csv" "$ml/input/data/validation/validation.csv"
  echo '{"num_round": "100", "max_depth": "6", "eta": "0.3", "tree_method": "hist", "nthread": "2",
         "objective": "reg:squarederror", "eval_metric": "rmse"}' > "$ml/input/config/hyperparameters.json"
  echo '{"train": {"ContentType": "text/csv"}, "validation": {"ContentType": "text/csv"}}' \
    > "$ml/input/config/inputdataconfig.json"
  local rc=0
  SAGESTEP_ML_ROOT=$ml /usr/bin/time -f '%e %M' -o "$work/ours.time" \
    "$bin" --checkpoint-every 1000 >/dev/null 2>"$work/ours-$rows.log" || rc=$?
  rm -rf "$ml"
  return "$rc"
}

report() {
  local name=$1 time_file=$2 bytes=$3 status=$4 s kib
  if [ ! -s "$time_file" ]; then printf '%-30s %s\n' "$name" "failed"; return; fi
  read -r s kib < <(grep -v "exited with" "$time_file")
  awk -v n="$name" -v s="$s" -v k="$kib" -v b="$bytes" -v st="$status" \
    'BEGIN { printf "%-30s %9.2fs %9.0f MB %10.2f %s\n", n, s, k / 1024, k * 1024 / b, st }'
}

[ "$big" = 1 ] && sizes+=(100000000)
for rows in "${sizes[@]}"; do
  if [ "$rows" = 100000000 ]; then make_big; else "$python" benches/train_python.py make "$work" "$rows"; fi
  bytes=$(( $(stat -c %s "$work/train-$rows.csv") + $(stat -c %s "$work/validation-$rows.csv") ))
  echo
  echo "== $rows rows x 28 features: $((bytes / 1000000)) MB of CSV (train + validation)"
  printf '%-30s %10s %12s %10s\n' "" "wall time" "peak memory" "mem/input"
  rm -f "$work/python.time" "$work/ours.time"
  status=""
  /usr/bin/time -f '%e %M' -o "$work/python.time" "$python" benches/train_python.py train "$work" "$rows" \
    >"$work/python-$rows.log" 2>&1 || status="FAILED: $(tail -1 "$work/python-$rows.log" | cut -c1-80)"
  report "python xgboost 3.2.0" "$work/python.time" "$bytes" "$status"
  status=""
  ours "$rows" || status="FAILED"
  report "sagestep train" "$work/ours.time" "$bytes" "$status"
done
