#!/usr/bin/env bash
# Benchmark the preprocess step on a synthetic Auto-MPG-shaped CSV (default about 1 GB).
# Prints rows/s and peak memory (max RSS). Not a test: figures go in notes.
#
#   benches/preprocess.sh [rows]      default 21,000,000 rows (about 1 GB)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rows=${1:-21000000}
work=${BENCH_DIR:-target/bench}
mkdir -p "$work"
input="$work/auto-mpg-$rows.csv"
cargo build --release --locked --bin preprocess >/dev/null

if [ ! -f "$input" ]; then
  echo "generating $rows rows into $input ..."
  python3 - "$rows" "$input" <<'PY'
import random, sys
rows, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(0)
names = ["chevrolet chevelle malibu", "buick skylark 320", "ford torino", "datsun pl510", "vw rabbit"]
with open(path, "w", buffering=1 << 22) as f:
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
PY
fi

bytes=$(stat -c %s "$input")
out=$(mktemp -d "$work/out.XXXX")
trap 'rm -rf "$out"' EXIT
/usr/bin/time -f '%e %M' -o "$work/time.txt" \
  target/x86_64-unknown-linux-musl/release/preprocess --input-data "$input" --output-dir "$out" 2>"$work/log.txt"
read -r seconds max_rss_kib < "$work/time.txt"
python3 - "$rows" "$bytes" "$seconds" "$max_rss_kib" <<'PY'
import sys
rows, size, seconds, rss_kib = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(f"input:        {rows:,} rows, {size / 1e6:,.0f} MB")
print(f"wall time:    {seconds:.2f} s")
print(f"throughput:   {rows / seconds:,.0f} rows/s ({size / seconds / 1e6:,.0f} MB/s)")
print(f"peak memory:  {rss_kib / 1024:,.0f} MiB ({rss_kib * 1024 / size:.2f} x input)")
PY
