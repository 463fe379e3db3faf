#!/usr/bin/env bash
# Benchmark the preprocess step beside pandas + scikit-learn doing the same job
# (benches/preprocess_pandas.py), on synthetic Auto-MPG-shaped CSVs. For each size, both
# sides' wall time, rows/s, peak memory (max RSS) and CPU seconds (user + system: steadier
# than wall time on a shared machine). Not a test: figures go in notes.
#
#   benches/preprocess.sh [rows ...]      default: 5000000 21000000 (about 250 MB and 1 GB)
#
# pandas and scikit-learn run in target/python/xgb32 (scripts/python-xgboost makes it;
# scikit-learn is added here, pinned). SKIP_PANDAS=1 measures the step alone. Then 1 host
# against 2 hosts on the largest object (benches/preprocess_hosts.sh; HOSTS=0 skips it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(5000000 21000000)
work=${BENCH_DIR:-target/bench}
mkdir -p "$work"
nice -n 19 cargo build --release --locked --bin preprocess >/dev/null
bin=target/x86_64-unknown-linux-musl/release/preprocess

python=target/python/xgb32/bin/python
if [ "${SKIP_PANDAS:-0}" != 1 ]; then
  [ -x "$python" ] || scripts/python-xgboost >/dev/null
  # `python -m pip`, not the venv's pip script: a venv copied from elsewhere keeps a shebang
  # naming the original's interpreter, and would install there.
  "$python" -c 'import sklearn' 2>/dev/null ||
    "$python" -m pip install --quiet --disable-pip-version-check scikit-learn==1.9.1
fi

generate() { benches/preprocess_generate.py "$1" "$2"; }

# measure NAME ROWS BYTES COMMAND...: wall time and max RSS of COMMAND, one line of figures.
measure() {
  local name=$1 rows=$2 bytes=$3
  shift 3
  /usr/bin/time -f '%e %M %U %S' -o "$work/time.txt" "$@" >"$work/log.txt" 2>&1 || { cat "$work/log.txt"; exit 1; }
  read -r seconds rss_kib user sys < "$work/time.txt"
  python3 - "$name" "$rows" "$bytes" "$seconds" "$rss_kib" "$user" "$sys" <<'PY'
import sys
name, rows, size, seconds, rss = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
cpu = float(sys.argv[6]) + float(sys.argv[7])
print(f"  {name:<22} {seconds:8.2f} s {rows / seconds:>12,.0f} rows/s {rss / 1024:>8,.0f} MiB peak "
      f"({rss * 1024 / size:.2f} x input) {cpu:8.2f} CPU s")
PY
  echo "$seconds" > "$work/last_seconds"
}

for rows in "${sizes[@]}"; do
  input="$work/auto-mpg-$rows.csv"
  [ -f "$input" ] || { echo "generating $rows rows into $input ..."; generate "$rows" "$input"; }
  bytes=$(stat -c %s "$input")
  echo "input: $rows rows, $((bytes / 1000000)) MB"
  out=$(mktemp -d "$work/out.XXXX")
  measure "sagestep preprocess" "$rows" "$bytes" "$bin" --input-data "$input" --output-dir "$out/sagestep"
  ours=$(cat "$work/last_seconds")
  if [ "${SKIP_PANDAS:-0}" != 1 ]; then
    measure "pandas + scikit-learn" "$rows" "$bytes" "$python" benches/preprocess_pandas.py "$input" "$out/pandas"
    theirs=$(cat "$work/last_seconds")
    python3 -c "print(f'  speed-up: {$theirs / $ours:.1f}x')"
  fi
  rm -rf "$out"
done

[ "${HOSTS:-1}" = 0 ] || benches/preprocess_hosts.sh "${sizes[-1]}"
