#!/usr/bin/env bash
# Multi-model endpoints at scale: MODELS (1,000) models of 100 trees loaded one after another
# into `serve` with SAGEMAKER_MULTI_MODEL=true (time per load; resident memory per model
# beside the model file's size and the bytes the server accounts), then one-row invocations
# spread at random over every model, beside the single-model server on the same model
# file, both pinned to core 1 with wrk on core 0; then every model unloaded.
# Needs: wrk (apt-get install wrk), scripts/python-xgboost (target/python/xgb32, or
# PYTHON_ENV=...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
env_dir=${PYTHON_ENV:-$PWD/target/python/xgb32}
shared=${SHARED:-../shared}
work=$PWD/target/bench/mme
models=${MODELS:-1000}
duration=${DURATION:-10s}
mkdir -p "$work"
"$env_dir/bin/python" benches/mme_setup.py "$work" "$models"
cargo build --release --locked --bin serve >/dev/null 2>&1
serve=$PWD/target/x86_64-unknown-linux-musl/release/serve

mme=18190 single=18191
SAGEMAKER_MULTI_MODEL=true SAGESTEP_MODELS_ROOT="$work/models" SAGESTEP_LOG=warn \
  taskset -c 1 "$serve" --port $mme & mme_pid=$!
SAGESTEP_LOG=warn taskset -c 1 "$serve" --model-dir "$work/single" --port $single & single_pid=$!
trap 'kill $mme_pid $single_pid 2>/dev/null || true' EXIT
for port in $mme $single; do
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/ping" >/dev/null && break; sleep 0.05; done
done

# Loads one after another on one keep-alive connection, then the memory they hold.
python3 - "$mme" "$mme_pid" "$work" "$models" <<'PY'
import http.client, json, os, statistics, sys, time
port, pid, work, count = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
def rss():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
conn = http.client.HTTPConnection("127.0.0.1", port)
def call(method, path, body=None):
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    assert r.status == 200, (method, path, r.status, data)
    return json.loads(data)
before = rss()
times = []
for i in range(count):
    name = f"m{i:04d}"
    body = json.dumps({"model_name": name, "url": f"{work}/models/{name}/model"})
    t = time.perf_counter()
    call("POST", "/models", body)
    times.append(time.perf_counter() - t)
after = rss()
files = sum(os.path.getsize(f"{work}/models/m{i:04d}/model/xgboost-model") for i in range(count))
described = [call("GET", f"/models/m{i:04d}") for i in range(count)]
accounted = sum(d["memoryBytes"] for d in described)
nodes = sum(d["nodes"] for d in described)
trees = described[0]["trees"]
times.sort()
ms = lambda s: f"{s * 1000:.2f} ms"
print(f"{count} loads of {trees}-tree models: total {sum(times):.2f} s; per load mean {ms(statistics.mean(times))}, "
      f"p50 {ms(times[len(times) // 2])}, p99 {ms(times[int(len(times) * 0.99) - 1])}, max {ms(times[-1])}")
print(f"resident memory: {before / 2**20:.1f} MiB before, {after / 2**20:.1f} MiB after: "
      f"{(after - before) / count / 1024:.1f} KiB per model")
print(f"model file (UBJSON): {files / count / 1024:.1f} KiB per model; accounted by the server: "
      f"{accounted / count / 1024:.1f} KiB per model; resident / accounted = {(after - before) / accounted:.2f}")
print(f"per tree node ({nodes / count:.0f} nodes a model): resident {(after - before) / nodes:.1f} bytes, "
      f"accounted {accounted / nodes:.1f} bytes, file {files / nodes:.1f} bytes")
PY

latency() { # port script path label [models to spread over]
  out=$(BODY="$work/one-row.csv" MODELS=${5:-$models} taskset -c 0 wrk -t1 -c"$conns" -d"$duration" -s "$2" --latency \
    "http://127.0.0.1:$1$3")
  printf '%-44s %8.0f requests/s  p50 %8s  p99 %8s %s\n' "$4" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1 == "50%" {print $2}' <<<"$out")" "$(awk '$1 == "99%" {print $2}' <<<"$out")" \
    "$(awk '/Non-2xx/ {print "(" $NF " non-2xx!)"}' <<<"$out")"
}
cat > "$work/spread.lua" <<'LUA'
-- One-row CSV to a model drawn at random among MODELS, on /models/{name}/invoke.
local f = io.open(os.getenv("BODY"), "rb"); local body = f:read("*a"); f:close()
local count = tonumber(os.getenv("MODELS"))
local headers = {["Content-Type"] = "text/csv"}
request = function()
  return wrk.format("POST", string.format("/models/m%04d/invoke", math.random(0, count - 1)), headers, body)
end
LUA
# 8 connections keep the server's core busy (latency then follows throughput); one connection
# shows a request's own latency.
for conns in 8 1; do
  echo "one-row CSV, server on core 1, wrk (1 thread, $conns connections) on core 0:"
  latency $single "$shared/bench/post-body.lua" /invocations "single-model server, /invocations"
  latency $mme "$work/spread.lua" / "multi-model server, spread over $models models"
  latency $mme "$work/spread.lua" / "multi-model server, all to one of its models" 1
  latency $single "$shared/bench/post-body.lua" /invocations "single-model server again"
done

python3 - "$mme" "$mme_pid" "$models" <<'PY'
import http.client, sys, time
port, pid, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port)
t = time.perf_counter()
for i in range(count):
    conn.request("DELETE", f"/models/m{i:04d}")
    r = conn.getresponse(); r.read()
    assert r.status == 200, r.status
took = time.perf_counter() - t
time.sleep(0.5)  # mimalloc returns freed pages after a short delay
with open(f"/proc/{pid}/status") as f:
    rss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
print(f"{count} unloads: {took * 1000 / count:.2f} ms each; resident memory after: {rss / 2**20:.1f} MiB")
PY
