#!/usr/bin/env bash
# Wall time of the whole pipeline (pipeline.json on Auto MPG, caching off) with each engine.
# Prints each run and the median per engine. Not a test: figures go in notes.
# Aims (issue 6): under 5 s with processes, under 20 s with Docker, on a 2-core machine.
#
#   benches/pipeline.sh [runs] [NAME=VALUE...]
#                                  default 5 runs per engine; the Docker images must exist
#                                  (docker/build-images.sh); NAME=VALUE are pipeline
#                                  parameters, e.g. TrainingInstanceCount=3 ProcessingInstanceCount=2
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=${1:-5}
shift || true
params=()
for p in "$@"; do params+=(--param "$p"); done
cargo build --release --locked --bins >/dev/null 2>&1
bin=target/x86_64-unknown-linux-musl/release
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT

for engine in process docker; do
  times=()
  for i in $(seq "$runs"); do
    start=$(date +%s.%N)
    "$bin/sagestep" run pipeline.json --engine "$engine" --no-cache --store "$store" \
      --param "InputData=file://$PWD/data/auto-mpg.data" --param ArtifactRoot=s3://bench/auto-mpg \
      --param ExecutionRoleArn=arn:aws:iam::000000000000:role/bench "${params[@]}" >/dev/null 2>&1
    end=$(date +%s.%N)
    t=$(echo "$end - $start" | bc)
    times+=("$t")
    printf '%-8s run %d: %.3f s\n' "$engine" "$i" "$t"
  done
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
  printf '%-8s median of %d: %.3f s\n' "$engine" "$runs" "$median"
done
