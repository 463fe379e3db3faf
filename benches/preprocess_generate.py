#!/usr/bin/env python3
"""Synthetic Auto-MPG-shaped CSV (a header, 9 columns, 1.5% missing horsepower) for the
preprocess benchmarks: `preprocess_generate.py ROWS PATH` (written beside, then renamed)."""
import os
import random
import sys

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
            f.write("".join(chunk))
            chunk = []
    f.write("".join(chunk))
os.rename(path + ".partial", path)
