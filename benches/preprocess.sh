#!/usr/bin/env bash
# Benchmark the preprocess step beside pandas + scikit-learn doing the same job
# (benches/preprocess_pandas.py), on synthetic Auto-MPG-shaped CSVs. For each size, both
# sides' wall time, rows/s, peak memory (max RSS) and CPU seconds (user + system: steadier
# than wall time on a shared machine). Not a test: figures go in notes.
#
#   benches/preprocess.sh [rows ...]      default: 5000000 21000000 (about 250 MB and 1 GB)
#
# pandas and scikit-learn run in target/python/xgb32 (scripts/python-xgboost makes it;
# scikit-learn is added here, pinned). SKIP_PANDAS=1 measures the step alone.
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

generate() {
  python3 - "$1" "$2" <<'PY'
import random, sys
rows, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(0)
names = ["chevrolet chevelle malibu", "buick skylark 320", "ford torino", "datsun pl510", "vw rabbit"]
with open(path + ".partial", "w", buffering=1 << 22) as f:
    f.write("mpg,cylinders,displacement,horsepower,weight,acceleration,model year,origin,car name\n")
    chunk = []
    for i in range(rows):
        cyl = rng.choice((3, 4, 4, 4, 5, 6, 6, 8, 8))
        hp = "?" if rng.random() < 0.015 else "%.1f" % rng.uniform(46, 230)
        chunk.append("%.1f,%d,%.1f,%s,%.1f,%.1f,%d,%d,\"%s\"\n" % (
            rng.uniform(9, 46.6), cyl, rng.uniform(68, 455), hp, rng.uniform(1613, 5140),
            rng.uniform(8, 24.8), rng.randint(70, 82), rng.randint(1, 3), rng.choice(names)))
        if len(chunk) == 100000:
            f.write("".join(chunk)); chunk = []
    f.write("".join(chunk))
import os; os.rename(path + ".partial", path)
PY
}

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
