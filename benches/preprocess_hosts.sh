#!/usr/bin/env bash
# One ~1 GB Auto-MPG-shaped object (FullyReplicated: every host holds it) preprocessed by 1
# host, then by 2 hosts (processes on loopback) reading it by ranges of lines; first with one
# core per host (taskset: each host its own core, as instances have), then with both cores
# for every host (this machine's 2 cores shared). Prints wall time, each process's peak
# memory (max RSS) and CPU seconds, checks that the 2-host sets and preprocessing.json are the
# 1-host ones byte for byte, and the load (uptime) before and after. Not a test.
#
#   benches/preprocess_hosts.sh [rows]      default 21000000 (about 1.1 GB)
# Run by benches/preprocess.sh too (HOSTS=0 skips it there).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rows=${1:-21000000}
work=$PWD/${BENCH_DIR:-target/bench}
mkdir -p "$work"
nice -n 19 cargo build --release --locked --bin preprocess >/dev/null
bin=$PWD/target/x86_64-unknown-linux-musl/release/preprocess
input=$work/auto-mpg-$rows.csv
[ -f "$input" ] || { echo "generating $rows rows into $input ..."; benches/preprocess_generate.py "$rows" "$input"; }
bytes=$(stat -c %s "$input")
echo "input: one object of $rows rows, $((bytes / 1000000)) MB; load before: $(uptime)"

tree() { # dir host world
  local d=$1 host=$2 world=$3 hosts="" i
  rm -rf "$d"; mkdir -p "$d/config" "$d/processing/input"
  for i in $(seq "$world"); do hosts="$hosts\"algo-$i\","; done
  echo "{\"current_host\": \"algo-$host\", \"hosts\": [${hosts%,}]}" > "$d/config/resourceconfig.json"
  echo '{"ProcessingJobName": "bench-preprocess-hosts"}' > "$d/config/processingjobconfig.json"
  # A hard link: the object as every host holds it, without a copy.
  ln "$input" "$d/processing/input/auto-mpg.csv"
}

# run WORLD CORES...: the job on WORLD hosts, host i pinned to CORES[i] (a list like 0 or 0,1).
run() {
  local world=$1; shift
  local cores=("$@") map="" i pids=() start end
  for i in $(seq "$world"); do map="$map,algo-$i=127.0.0.1:$((29200 + i))"; done
  start=$(date +%s.%N)
  for i in $(seq "$world"); do
    tree "$work/hosts-$world/algo-$i" "$i" "$world"
    SAGESTEP_CLUSTER_HOSTS=${map#,} SAGESTEP_ML_ROOT=$work/hosts-$world/algo-$i SAGESTEP_LOG=info \
      /usr/bin/time -f '%e %M %U %S' -o "$work/hosts-$world/time-$i.txt" \
      taskset -c "${cores[$((i - 1))]}" "$bin" >/dev/null 2>"$work/hosts-$world/log-$i.txt" &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { cat "$work/hosts-$world/log-$((i + 1)).txt"; exit 1; }
  done
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v w="$world" -v c="${cores[*]}" \
    'BEGIN { printf "  %d host(s), cores %-8s %8.2f s wall\n", w, c, e - s }'
  for i in $(seq "$world"); do
    read -r seconds rss user sys < "$work/hosts-$world/time-$i.txt"
    awk -v i="$i" -v r="$rss" -v u="$user" -v s="$sys" -v b="$bytes" \
      'BEGIN { printf "    algo-%d: %8.0f MiB peak (%.2f x input) %8.2f CPU s\n", i, r / 1024, r * 1024 / b, u + s }'
  done
}

# same: the 2-host outputs are the 1-host ones (part files in host order), byte for byte.
same() {
  local set
  cmp -s "$work/hosts-1/algo-1/processing/artifacts/preprocessing.json" \
    "$work/hosts-2/algo-1/processing/artifacts/preprocessing.json" || { echo "  preprocessing.json DIFFERS"; exit 1; }
  for set in train validation test_set_1 test_set_2; do
    cat "$work/hosts-2"/algo-{1,2}/processing/$set/part-algo-*.csv 2>/dev/null |
      cmp -s - "$work/hosts-1/algo-1/processing/$set/$set.csv" || { echo "  $set DIFFERS"; exit 1; }
  done
  echo "  2-host sets and preprocessing.json: byte-identical to 1 host's"
}

echo "one core per host (each instance its own core):"
run 1 0
run 2 0 1
same
echo "both cores for every host (this machine's 2 cores shared by the hosts):"
run 1 0,1
run 2 0,1 0,1
same
echo "load after: $(uptime)"
rm -rf "$work/hosts-1" "$work/hosts-2"
