"""Serve benchmark: single-patient predict (with explanation) against a live server on 127.0.0.1.

Run: .venv/bin/python benchmarks/serve.py [--run RUN_DIR] [--requests N]
Trains a LightGBM breast-cancer run (unless --run is given), starts `permed serve` twice (ONNX
Runtime, then native scoring with --no-onnx) as separate processes, and drives each with a
bounded asyncio load at concurrency 1, 8 and 32: p50/p95/p99 latency (client side, full HTTP
round trip incl. authentication, validation, scoring, explanation, prediction log and audit
entry) and requests/s. The load generator shares the machine's cores with the server.
Prints the tables side by side and writes benchmarks/results/serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import print_table, write_results  # noqa: E402
from permed.ingest import export_dataset  # noqa: E402
from permed.serve import Storage  # noqa: E402
from permed.study import Study  # noqa: E402
from permed.workflow import TrainConfig, train_run  # noqa: E402

CONCURRENCY = (1, 8, 32)
# The explanation's output: the probability (interventional TreeSHAP on 100 background rows, as
# permed predict --explain), the log-odds (path-dependent TreeSHAP), or none; "health" is GET
# /health on the same server, the floor set by the HTTP stack and the client on this machine.
EXPLAIN = ("probability", "log-odds", "none", "health")
TARGET_P99_MS, TARGET_RPS = 25.0, 400.0
TIME_CAP_S = 20.0
PERMED = [sys.executable, "-m", "permed.cli.main"]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(run: Path, data_dir: Path, onnx: bool, env: dict[str, str]) -> tuple[subprocess.Popen,
                                                                                 str]:
    port = _port()
    command = [*PERMED, "serve", f"bc={run}", "--port", str(port), "--data-dir", str(data_dir),
               "--rate-limit", "0", "--max-batch", "1"] + ([] if onnx else ["--no-onnx"])
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"permed serve exited: {server.stderr.read()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError("permed serve did not start in 180 s")


def _body(patient: dict, explain: str) -> dict:
    if explain == "none":
        return {"patient": patient, "explain": False}
    return {"patient": patient, "explain": True, "explain_scale": explain}


async def _load(url: str, key: str, patients: list[dict], concurrency: int, total: int,
                explain: str) -> dict[str, float]:
    """``total`` requests from ``concurrency`` workers (or until the time cap)."""
    latencies: list[float] = []
    errors = 0
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits,
                                 timeout=60) as client:
        async def call(patient: dict) -> httpx.Response:
            if explain == "health":  # the HTTP stack alone: no auth, model or audit
                return await client.get("/health")
            return await client.post("/v1/models/bc/predict", json=_body(patient, explain))

        for patient in patients[:10]:  # warm-up: connections, caches
            await call(patient)
        started = time.perf_counter()

        async def worker() -> None:
            nonlocal issued, errors
            while issued < total and time.perf_counter() - started < TIME_CAP_S:
                patient = patients[issued % len(patients)]
                issued += 1
                t0 = time.perf_counter()
                response = await call(patient)
                latencies.append(1000 * (time.perf_counter() - t0))
                errors += response.status_code != 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    values = np.asarray(latencies)
    return {"requests": len(values), "errors": errors,
            "p50_ms": float(np.percentile(values, 50)), "p95_ms": float(np.percentile(values, 95)),
            "p99_ms": float(np.percentile(values, 99)), "rps": len(values) / wall}


def _train(folder: Path) -> Path:
    data = export_dataset("breast_cancer", folder / "bc.csv")
    return train_run(data, Study(task="diagnose", target="diagnosis"),
                     TrainConfig(models=["lightgbm"], cv=3, n_boot=200), folder / "bc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="A trained run (default: train LightGBM on "
                        "breast cancer)")
    parser.add_argument("--requests", type=int, default=600,
                        help="Requests per measurement at concurrency >= 8 (a third at 1).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="permed-bench-serve-") as tmp:
        folder = Path(tmp)
        if args.run is None:  # a throwaway integrity key signs the run trained here
            os.environ["PERMED_HOME"] = str(folder / "home")
        env = dict(os.environ)
        run = args.run or _train(folder)
        patients = (pd.read_csv(folder / "bc.csv") if args.run is None
                    else pd.read_csv(export_dataset("breast_cancer", folder / "bc.csv")))
        patients = patients.drop(columns=["diagnosis"]).sample(200, random_state=0)
        records = patients.to_dict("records")
        key = Storage(f"sqlite:///{folder / 'data' / 'permed.db'}").add_user("bench", "clinician")
        rows, raw = [], []
        for onnx in (True, False):
            server, url = _start(run, folder / "data", onnx, env)
            try:
                engine = httpx.get(url + "/v1/models", headers={
                    "Authorization": f"Bearer {key}"}).json()[0]["engine"]
                for explain in EXPLAIN:
                    for concurrency in CONCURRENCY:
                        total = args.requests if concurrency > 1 else args.requests // 3
                        result = asyncio.run(_load(url, key, records, concurrency, total,
                                                   explain))
                        raw.append({"engine": engine, "explain": explain,
                                    "concurrency": concurrency, **result})
            finally:
                server.terminate()
                server.wait(timeout=30)
        for explain in EXPLAIN:
            for concurrency in CONCURRENCY:
                pair = {r["engine"]: r for r in raw
                        if r["explain"] == explain and r["concurrency"] == concurrency}
                row = {"explanation": explain, "conc": concurrency}
                for engine in ("onnx", "native"):
                    r = pair[engine]
                    row[f"{engine} p50/p95/p99 ms"] = (f"{r['p50_ms']:.1f}/{r['p95_ms']:.1f}/"
                                                       f"{r['p99_ms']:.1f}")
                    row[f"{engine} req/s"] = f"{r['rps']:.0f}"
                    row[f"{engine} errors"] = r["errors"]
                rows.append(row)
    columns = ["explanation", "conc", "onnx p50/p95/p99 ms", "onnx req/s", "native p50/p95/p99 ms",
               "native req/s", "onnx errors", "native errors"]
    print(f"permed serve, breast cancer LightGBM (300 trees), single-patient POST "
          f"/v1/models/bc/predict on 127.0.0.1, {os.cpu_count()} cores shared with the load "
          "generator")
    print_table(rows, columns)
    best = next(r for r in raw if r["engine"] == "onnx" and r["explain"] == "probability"
                and r["concurrency"] == 8)
    p99_ok = "met" if best["p99_ms"] <= TARGET_P99_MS else "NOT met"
    rps_ok = "met" if best["rps"] >= TARGET_RPS else "NOT met"
    verdict = (f"target at concurrency 8, probability explanation, ONNX: p99 "
               f"{best['p99_ms']:.1f} ms "
               f"(target <= {TARGET_P99_MS:.0f}: {p99_ok}), {best['rps']:.0f} req/s "
               f"(target >= {TARGET_RPS:.0f}: {rps_ok})")
    print(verdict)
    path = write_results("serve", {
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "model": "breast cancer, LightGBM (300 trees), TreeSHAP interventional explanation",
        "targets": {"p99_ms_at_concurrency_8": TARGET_P99_MS, "rps": TARGET_RPS},
        "verdict": verdict, "results": raw})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
