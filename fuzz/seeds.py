"""Seed corpora for the fuzz targets, built from the repository's real files (data/,
tests/data/, the shared fixtures) each time `scripts/fuzz` runs; nothing here is committed.

    python3 fuzz/seeds.py <repo> <shared> <out>     # writes <out>/<target>/<name>

Each target's input layout is in src/fuzzing.rs: some targets take leading selector bytes.
"""
import glob
import gzip
import json
import os
import struct
import sys

repo, shared, out = sys.argv[1:4]


def put(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)


def head(path, lines):
    with open(path, "rb") as f:
        return b"".join(f.readlines()[:lines])


def rows(path, lines):
    """The first rows of a numeric CSV as lists of floats (None for an empty field)."""
    out = []
    for line in head(path, lines).decode().splitlines():
        if line.strip():
            out.append([float(v) if v.strip() else None for v in line.split(",")])
    return out


# RecordIO-protobuf (src/data/recordio.rs): frames around aialgs.data.Record messages.
def varint(n):
    b = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            b.append(byte | 0x80)
        else:
            b.append(byte)
            return bytes(b)


def field(number, payload):
    return varint((number << 3) | 2) + varint(len(payload)) + payload


def entry(key, values, keys=(), shape=()):
    tensor = field(1, b"".join(struct.pack("<f", v) for v in values))
    if keys:
        tensor += field(2, b"".join(varint(k) for k in keys))
    if shape:
        tensor += field(3, b"".join(varint(s) for s in shape))
    return field(1, key.encode()) + field(2, field(2, tensor))


def record(features, label=None, sparse=False):
    if sparse:
        keys = [i for i, v in enumerate(features) if v is not None]
        body = field(1, entry("values", [features[i] for i in keys], keys, [len(features)]))
    else:
        body = field(1, entry("values", [float("nan") if v is None else v for v in features]))
    if label is not None:
        body += field(2, entry("values", [label]))
    return body


def frame(payload):
    return struct.pack("<II", 0xCED7230A, len(payload)) + payload + b"\0" * (-len(payload) % 4)


training = sorted(glob.glob(os.path.join(shared, "fixtures/training/*/train.csv")))
models = sorted(glob.glob(os.path.join(repo, "tests/data/models/*/*")))
models += sorted(glob.glob(os.path.join(shared, "fixtures/xgboost/*/*")))

# model_load: every model file under 64 KiB.
for case in models:
    for name in ("xgboost-model", "model.json", "xgboost-model.pkl"):
        path = os.path.join(case, name)
        if os.path.exists(path) and os.path.getsize(path) <= 65536:
            tag = "-".join(case.split(os.sep)[-2:])
            put("model_load", f"{tag}-{name}", open(path, "rb").read())
for path in glob.glob(os.path.join(repo, "tests/data/fuzz/model_load/*")):
    put("model_load", "finding-" + os.path.basename(path), open(path, "rb").read())

# request_decode: [content type, num_feature, used-features stride] + body, from X.csv files.
for i, case in enumerate(models[:12]):
    path = os.path.join(case, "X.csv")
    if not os.path.exists(path):
        continue
    x = rows(path, 6)
    width = len(x[0])
    csv = head(path, 6)
    libsvm = "".join(" ".join(f"{j}:{v:g}" for j, v in enumerate(r) if v is not None) + "\n" for r in x)
    dense = [[v for v in r] for r in x]
    for kind, body in (
        (0, csv),
        (1, libsvm.encode()),
        (2, json.dumps({"instances": dense}).encode()),
        (2, json.dumps(dense[0]).encode()),
        (3, "".join(json.dumps({"features": r}) + "\n" for r in dense).encode()),
        (4, b"".join(frame(record(r)) for r in x)),
        (4, b"".join(frame(record(r, sparse=True)) for r in x)),
    ):
        put("request_decode", f"{i}-{kind}-{len(body)}", bytes([kind, width, i % 4]) + body)

# train_csv ([csv_weights] + text), train_libsvm, train_recordio: the training fixtures' heads.
for case in training + [os.path.join(repo, "data/auto-mpg.data")]:
    tag = os.path.basename(os.path.dirname(case)) if case.endswith("train.csv") else "auto-mpg"
    text = head(case, 12)
    put("train_csv", tag, b"\0" + text)
    put("train_csv", tag + "-weights", b"\1" + text)
    if tag == "auto-mpg":
        continue
    r = rows(case, 12)
    put("train_csv", tag + ".gz", b"\0" + gzip.compress(text, mtime=0))
    libsvm = "".join(
        f"{row[0]:g}" + "".join(f" {j}:{v:g}" for j, v in enumerate(row[1:]) if v is not None) + "\n" for row in r
    )
    put("train_libsvm", tag, libsvm)
    put("train_libsvm", tag + "-weights-qid", libsvm.replace("\n", "\n").replace(" 0:", ":0.5 qid:1 0:", 3))
    put("train_libsvm", tag + ".gz", gzip.compress(libsvm.encode(), mtime=0))
    put("train_recordio", tag, b"".join(frame(record(row[1:], row[0])) for row in r))
    put("train_recordio", tag + "-sparse", b"".join(frame(record(row[1:], row[0], sparse=True)) for row in r))

# train_parquet: the Parquet fixtures, whole (the footer is at the end).
for path in glob.glob(os.path.join(repo, "tests/data/parquet/*.parquet")):
    put("train_parquet", os.path.basename(path), open(path, "rb").read())

# job_config: [file] + contents (0 hyperparameters, 1 inputdataconfig, 2 resourceconfig,
# 3 checkpointconfig, 4 the monitor's dataset_format), as SageMaker and the runner write them.
for path in sorted(glob.glob(os.path.join(shared, "fixtures/training/*/hyperparameters.json"))):
    put("job_config", "hp-" + os.path.basename(os.path.dirname(path)), b"\0" + open(path, "rb").read())
put("job_config", "hp-kfold", b"\0" + json.dumps({"num_round": 5, "_kfold": "3", "gamma": "1", "tree_method": "exact"}).encode())
channel = {"ContentType": "text/csv", "TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
put("job_config", "inputdataconfig", b"\1" + json.dumps({"train": channel, "validation": channel}).encode())
put("job_config", "resourceconfig", b"\2" + json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"], "network_interface_name": "eth0"}).encode())
put("job_config", "checkpointconfig", b"\3" + json.dumps({"LocalPath": "/opt/ml/checkpoints", "S3Uri": "s3://bucket/checkpoints"}).encode())
for i, fmt in enumerate(({"csv": {"header": True, "output_columns_position": "START"}}, {"json": {"lines": True}}, {"parquet": {}})):
    put("job_config", f"dataset-format-{i}", b"\4" + json.dumps(fmt).encode())

# pipeline_definition: the project's pipeline.json.
put("pipeline_definition", "pipeline.json", open(os.path.join(repo, "pipeline.json"), "rb").read())
