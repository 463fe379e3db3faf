"""Independent oracle for the monitor step's statistics.json (tests/it/monitor.rs).

    monitor_oracle.py baseline DATA.csv STATISTICS.json
        pandas (count, mean, sum, population std, min, max, completeness, distinct values) and
        a Python port of Deequ 2.0.2's KLL sketch (QuantileNonSample / NonSampleCompactor, k=2048,
        c=0.64) fed the column's values in file order: its compactor levels must equal
        sketch.data, and Model Monitor's bucket rule applied to sketch.data must give the buckets.
        Prints "ok <features>" or fails with the differences.
    monitor_oracle.py distance BASELINE.json CURRENT.json FEATURE
        Prints Deequ's Robust L-infinity distance between the two KLL sketches of FEATURE.
"""
import csv
import json
import math
import sys

import pandas as pd


class DeequKll:
    """Deequ's QuantileNonSample with NonSampleCompactor, single partition."""

    def __init__(self, k=2048, c=0.64):
        self.k, self.c = k, c
        self.levels, self.compactions, self.offsets = [], [], []
        self.size = 0
        self.room = 0
        self.expand()

    def capacity(self, h):
        return 2 * (math.ceil(self.k * self.c ** h / 2) + 1)

    def expand(self):
        self.levels.append([])
        self.compactions.append(0)
        self.offsets.append(0)
        self.room = sum(self.capacity(h) for h in range(len(self.levels)))

    def update(self, x):
        self.levels[0].append(x)
        self.size += 1
        if self.size > self.room:
            self.condense()

    def condense(self):
        for h in range(len(self.levels)):
            if len(self.levels[h]) >= self.capacity(h):
                if h + 1 >= len(self.levels):
                    self.expand()
                items = self.levels[h]
                n = len(items)
                even = n - n % 2
                if self.compactions[h] % 2 == 1:
                    self.offsets[h] = 1 - self.offsets[h]
                ordered = sorted(items[:even])
                moved = ordered[self.offsets[h]:even:2]
                self.levels[h] = [items[n - 1]] if n % 2 else []
                self.compactions[h] += 1
                self.levels[h + 1].extend(moved)
                self.size = sum(len(level) for level in self.levels)
                return


def weighted(data):
    return [(x, 2 ** level) for level, items in enumerate(data) for x in items]


def buckets(data, lo, hi, count=10):
    items = weighted(data)
    rank = lambda v: sum(w for x, w in items if x <= v)
    rank_excl = lambda v: sum(w for x, w in items if x < v)
    out = []
    for i in range(count):
        low = lo + (hi - lo) * i / count
        high = lo + (hi - lo) * (i + 1) / count
        upper = rank(high) if i == count - 1 else rank_excl(high)
        out.append({"lower_bound": low, "upper_bound": high, "count": float(upper - rank_excl(low))})
    return out


def close(a, b, rel=1e-9):
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def baseline(data_path, stats_path):
    frame = pd.read_csv(data_path, keep_default_na=False, na_values=[""])
    with open(data_path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    stats = json.load(open(stats_path))
    problems = []
    assert stats["dataset"]["item_count"] == len(frame), (stats["dataset"], len(frame))
    for index, feature in enumerate(stats["features"]):
        name = feature["name"]
        column = frame[name]
        present = int(column.count())
        if "numerical_statistics" in feature:
            n = feature["numerical_statistics"]
            want = {
                "mean": column.mean(), "sum": column.sum(), "std_dev": column.std(ddof=0),
                "min": column.min(), "max": column.max(),
            }
            for key, value in want.items():
                if not close(n[key], float(value)):
                    problems.append(f"{name}.{key}: ours {n[key]!r}, pandas {value!r}")
            common = n["common"]
            sketch = n["distribution"]["kll"]["sketch"]
            port = DeequKll(int(sketch["parameters"]["k"]), sketch["parameters"]["c"])
            for row in rows:
                if row[index] != "":
                    port.update(float(row[index]))
            if port.levels != sketch["data"]:
                sizes = ([len(l) for l in port.levels], [len(l) for l in sketch["data"]])
                problems.append(f"{name}: sketch.data differs from Deequ's compactors (level sizes {sizes})")
            rebuilt = buckets(sketch["data"], n["min"], n["max"])
            if rebuilt != n["distribution"]["kll"]["buckets"]:
                problems.append(f"{name}: buckets {n['distribution']['kll']['buckets']} != rule {rebuilt}")
            if sum(w for _, w in weighted(sketch["data"])) != present:
                problems.append(f"{name}: the sketch's weight is not the present count")
        else:
            s = feature["string_statistics"]
            common = s["common"]
            if s["distinct_count"] != column.nunique():
                problems.append(f"{name}: distinct_count {s['distinct_count']} != {column.nunique()}")
            categorical = s.get("distribution", {}).get("categorical")
            if categorical is not None:
                ours = {b["value"]: b["count"] for b in categorical["buckets"]}
                if ours != column.value_counts().to_dict():
                    problems.append(f"{name}: categorical buckets differ")
        if (common["num_present"], common["num_missing"]) != (present, len(frame) - present):
            problems.append(f"{name}: present/missing {common} != {present}/{len(frame) - present}")
    if problems:
        sys.exit("\n".join(problems))
    print(f"ok {len(stats['features'])}")


def sketch_of(path, feature):
    stats = json.load(open(path))
    f = next(f for f in stats["features"] if f["name"] == feature)
    return f["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"]


def distance(baseline_path, current_path, feature):
    cdfs = []
    for path in (baseline_path, current_path):
        items = sorted(weighted(sketch_of(path, feature)))
        total = sum(w for _, w in items)
        cdfs.append((items, total))
    keys = sorted({x for items, _ in cdfs for x, _ in items})
    (a, n), (b, m) = cdfs
    linf = max(abs(sum(w for x, w in a if x <= k) / n - sum(w for x, w in b if x <= k) / m) for k in keys)
    print(repr(max(0.0, linf - 1.8 * math.sqrt((n + m) / (n * m)))))


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    {"baseline": baseline, "distance": distance}[mode](*args)
