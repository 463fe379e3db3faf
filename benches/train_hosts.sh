#!/usr/bin/env bash
# Data-parallel training on this machine: the 1,000,000 x 28 set of benches/train.sh split in
# two shards trained by 2 hosts (local processes on loopback, one thread each), beside one
# host on all of it (one thread, and two threads). Same parameters as benches/train.sh.
# Prints wall time, and the bytes each host sent (and per tree level).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-$PWD/target/python/xgb32/bin/python}
work=$PWD/target/bench/train
rows=${1:-1000000}
mkdir -p "$work"
"$python" benches/train_python.py make "$work" "$rows"
cargo build --release --locked --bin train >/dev/null 2>&1
bin=$PWD/target/x86_64-unknown-linux-musl/release/train
shards=$work/shards-$rows
if [ ! -d "$shards" ]; then
  mkdir -p "$shards"
  split -n l/2 -d "$work/train-$rows.csv" "$shards/part-"
fi

elapsed() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { print e - s }'; }

tree() { # dir host world threads sharded
  local d=$1 host=$2 world=$3 threads=$4 hosts="" i
  rm -rf "$d"; mkdir -p "$d/input/config" "$d/input/data/train" "$d/input/data/validation"
  for i in $(seq "$world"); do hosts="$hosts\"algo-$i\","; done
  echo "{\"current_host\": \"algo-$host\", \"hosts\": [${hosts%,}]}" > "$d/input/config/resourceconfig.json"
  echo "{\"num_round\": \"100\", \"max_depth\": \"6\", \"eta\": \"0.3\", \"tree_method\": \"hist\", \"nthread\": \"$threads\",
         \"objective\": \"reg:squarederror\", \"eval_metric\": \"rmse\"}" > "$d/input/config/hyperparameters.json"
  echo '{"train": {"ContentType": "text/csv", "S3DistributionType": "ShardedByS3Key"}, "validation": {"ContentType": "text/csv"}}' \
    > "$d/input/config/inputdataconfig.json"
  ln "$work/validation-$rows.csv" "$d/input/data/validation/validation.csv"
}

run_one() { # label threads
  local d=$work/host-one
  tree "$d" 1 1 "$2"
  ln "$work/train-$rows.csv" "$d/input/data/train/train.csv"
  local start=$(date +%s.%N)
  SAGESTEP_ML_ROOT=$d "$bin" --checkpoint-every 1000 >/dev/null 2>"$work/one.log"
  printf '%-40s %8.2fs\n' "$1" "$(elapsed "$start")"
}

run_one "1 host, 1 thread (XGBoost's arithmetic)" 1
run_one "1 host, 2 threads (XGBoost's arithmetic)" 2

map="algo-1=127.0.0.1:29101,algo-2=127.0.0.1:29102"
start=$(date +%s.%N)
pids=()
for i in 1 2; do
  d=$work/host-$i
  tree "$d" "$i" 2 1
  ln "$shards/part-0$((i - 1))" "$d/input/data/train/part-$i.csv"
  SAGESTEP_CLUSTER_HOSTS=$map SAGESTEP_ML_ROOT=$d SAGESTEP_LOG=info "$bin" --checkpoint-every 1000 \
    >/dev/null 2>"$work/host-$i.log" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
printf '%-40s %8.2fs\n' "2 hosts, 1 thread each (loopback)" "$(elapsed "$start")"
for i in 1 2; do
  sent=$(sed 's/\x1b\[[0-9;]*m//g' "$work/host-$i.log" | grep -o 'bytes_sent=[0-9]*' | cut -d= -f2)
  echo "host $i sent $sent bytes: $((sent / 100 / 6)) bytes per tree level (100 trees, 6 levels)"
done
