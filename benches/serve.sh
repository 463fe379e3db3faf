#!/usr/bin/env bash
# The serve step beside the Python reference server (../shared/bench/reference_server.py,
# gunicorn, 2 workers) on the same model, machine and payloads, with wrk; then the time from
# `docker run` (and from starting the process) to the first 200 on /ping.
# Needs: wrk (apt-get install wrk), scripts/python-xgboost plus flask and gunicorn in
# target/python/xgb32 (or PYTHON_ENV=...), and the sagestep-serve image (docker/build-images.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
env_dir=${PYTHON_ENV:-$PWD/target/python/xgb32}
shared=${SHARED:-../shared}
work=$PWD/target/bench/serve
duration=${DURATION:-10s}
mkdir -p "$work"
"$env_dir/bin/python" benches/serve_setup.py "$work"
cargo build --release --locked --bin serve >/dev/null 2>&1
serve=target/x86_64-unknown-linux-musl/release/serve

ours=18090 ref=18091
SAGESTEP_LOG=warn "$serve" --model-dir "$work/model" --port $ours & ours_pid=$!
(cd "$shared/bench" && MODEL="$work/model/xgboost-model" "$env_dir/bin/gunicorn" -w 2 -b 127.0.0.1:$ref \
  --log-level warning reference_server:app) & ref_pid=$!
trap 'kill $ours_pid $ref_pid 2>/dev/null || true' EXIT
for port in $ours $ref; do
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/ping" >/dev/null && break; sleep 0.05; done
done

printf '%-10s %-10s %12s %12s %10s %10s\n' server payload requests/s rows/s p50 p99
for payload in one-row.csv 1000-rows.csv; do
  rows=$(wc -l < "$work/$payload")
  for server in sagestep:$ours reference:$ref; do
    name=${server%%:*} port=${server##*:}
    out=$(BODY="$work/$payload" wrk -t2 -c8 -d"$duration" -s "$shared/bench/post-body.lua" --latency \
      "http://127.0.0.1:$port/invocations")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    printf '%-10s %-10s %12.0f %12.0f %10s %10s %s\n' "$name" "$payload" "$rps" "$(echo "$rps * $rows" | bc)" "$p50" "$p99" \
      "${errors:+($errors non-2xx!)}"
  done
done

# Latency without wrk competing for the server's cores: server on core 1, wrk on core 0.
kill $ours_pid; wait $ours_pid 2>/dev/null || true
SAGESTEP_LOG=warn taskset -c 1 "$serve" --model-dir "$work/model" --port $ours & ours_pid=$!
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$ours/ping" >/dev/null && break; sleep 0.05; done
for payload in one-row.csv 1000-rows.csv; do
  out=$(BODY="$work/$payload" taskset -c 0 wrk -t1 -c8 -d"$duration" -s "$shared/bench/post-body.lua" --latency \
    "http://127.0.0.1:$ours/invocations")
  printf 'sagestep on one core, wrk on the other, %-13s %10.0f requests/s  p50 %s  p99 %s\n' "$payload" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1 == "50%" {print $2}' <<<"$out")" "$(awk '$1 == "99%" {print $2}' <<<"$out")"
done

# Start-up: from launch to the first 200 on /ping, five times each, the median.
startup() {
  python3 - "$@" <<'PY'
import subprocess, sys, time, urllib.request
kind, port = sys.argv[1], sys.argv[2]
times = []
started = []
for _ in range(5):
    t = time.perf_counter()
    if kind == "docker":
        cid = subprocess.check_output(sys.argv[3:]).decode().strip()
        started.append((time.perf_counter() - t) * 1000)
    else:
        proc = subprocess.Popen(sys.argv[3:], stderr=subprocess.DEVNULL)
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1).status == 200:
                break
        except Exception:
            time.sleep(0.001)
    times.append((time.perf_counter() - t) * 1000)
    if kind == "docker":
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    else:
        proc.terminate(); proc.wait()
times.sort()
print(f"{kind:>7} launch to first /ping 200: median {times[2]:.0f} ms (min {times[0]:.0f}, max {times[-1]:.0f})")
if started:
    started.sort()
    print(f"         of which `docker run -d` returning (the engine starting the container): median {started[2]:.0f} ms")
PY
}
kill $ours_pid; wait $ours_pid 2>/dev/null || true
startup process 18092 "$serve" --model-dir "$work/model" --port 18092
startup docker 18093 docker run -d --rm -p 127.0.0.1:18093:8080 -v "$work/model:/opt/ml/model:ro" sagestep-serve:latest serve
