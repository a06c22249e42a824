"""permed bench: measure how cost grows with the cohort (see permed.workflow._scale)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from permed.cli._console import err, out
from permed.exceptions import PermedError

__all__ = ["app", "scale"]

app = typer.Typer(help="Benchmarks: how cost grows with the number of patients.",
                  no_args_is_help=True)


@app.command("scale")
def scale(
    rows: str = typer.Option("10000,100000,1000000", help="Cohort sizes, comma-separated."),
    risk: bool = typer.Option(False, help="Also train a risk model (Cox) at each size."),
    dask: bool = typer.Option(False, help="Also train on a Dask LocalCluster of 2 worker "
                              "processes."),
    bootstrap: int = typer.Option(200, help="Bootstrap replicates (runs and timing; at "
                                  "least 100)."),
    out_file: Path = typer.Option(Path("benchmarks/results/scale.json"), "--out",
                                  help="Where to write the JSON results."),
    extra_max_rows: int | None = typer.Option(
        None, help="Largest size at which --risk and --dask train (e.g. 100000: the 1M size "
        "then measures diagnose, scoring and the bootstrap only)."),
) -> None:
    """Train, score and bootstrap synthetic cohorts of each size; print how cost grows.

    Example: permed bench scale --rows 10000,100000,1000000 --risk --dask
    """
    from permed.workflow._scale import scale_benchmark, summary_rows

    try:
        sizes = [int(float(r)) for r in rows.split(",") if r.strip()]
    except ValueError:
        raise PermedError(f"--rows must be comma-separated integers, got '{rows}': use e.g. "
                          "--rows 10000,100000") from None
    if bootstrap < 100:
        raise PermedError(f"--bootstrap needs at least 100 replicates, got {bootstrap}")
    if not sizes or min(sizes) < 500:
        raise PermedError(f"--rows needs sizes of at least 500 patients, got '{rows}'")
    payload = scale_benchmark(sizes, risk=risk, dask=dask, n_boot=bootstrap,
                              log=lambda line: err.print(line, highlight=False),
                              extra_max_rows=extra_max_rows)
    table = summary_rows(payload)
    columns = list(table[0])
    widths = {c: max(len(c), *(len(str(row[c])) for row in table)) for c in columns}
    typer.echo("  ".join(c.ljust(widths[c]) for c in columns))
    for row in table:
        typer.echo("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
    typer.echo(f"growth per 10x rows: {payload['growth_per_10x']}")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(payload, indent=2) + "\n")
    out.print(str(out_file), highlight=False)
