"""Scale: train time and peak memory, scoring throughput, bootstrap time at growing sizes.

    python benchmarks/scale.py [--rows 10000,100000,1000000] [--risk] [--dask]

Prints a side-by-side table and writes benchmarks/results/scale.json. Timings depend on the
machine's load; this is a benchmark, never a test.
"""

from __future__ import annotations

import argparse

from _shared import print_table, write_results
from permed.workflow._scale import scale_benchmark, summary_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", default="10000,100000,1000000")
    parser.add_argument("--risk", action="store_true")
    parser.add_argument("--dask", action="store_true")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--extra-max-rows", type=int, default=None,
                        help="largest size at which risk and Dask are trained")
    args = parser.parse_args()
    sizes = [int(float(r)) for r in args.rows.split(",")]
    payload = scale_benchmark(sizes, risk=args.risk, dask=args.dask, n_boot=args.bootstrap,
                              extra_max_rows=args.extra_max_rows)
    table = summary_rows(payload)
    print_table(table, list(table[0]))
    print(f"growth per 10x rows: {payload['growth_per_10x']}")
    print(write_results("scale", payload))


if __name__ == "__main__":
    main()
