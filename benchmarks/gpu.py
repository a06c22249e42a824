"""Deep-model benchmark: training on the CPU vs a CUDA GPU, side by side on one machine.

Run (on a machine with a CUDA GPU): .venv/bin/python benchmarks/gpu.py [--epochs 10]
Writes benchmarks/results/gpu.json; without a GPU it says so and writes nothing.

Each deep model family, with the settings `permed train` gives it, is fitted twice with the same
seed, once with ``device="cpu"`` (torch's CPU threads, or one thread where permed's models keep
small networks on one) and once with ``device="cuda"``, for a fixed number of epochs
(``patience`` = ``max_epochs``: early stopping would make the two runs do different amounts of
work), each after a one-epoch warm-up fit on the same device (torch's first operations on a
device load its kernels: seconds that are not training). The MLP is also fitted at larger batch
sizes, to see whether the GPU pays there. The table gives the seconds of each fit, the ratio,
the held-out figure of each fit (Harrell's C or ROC AUC: the GPU fit must learn as well), and
the device ``device="auto"`` chooses for that network (``resolve_device``: the fully connected
networks stay on the CPU), so that the choice can be read against the timings. Fitted models
are moved back to the CPU, so prediction is not timed here.

Data: SUPPORT (8,873 patients, 14 features; the pycox CSV in ../shared/data) for the survival
models, 80/20 split; synthetic tables, event sequences and images for the classifiers.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import SHARED_DATA, print_table, write_results  # noqa: E402
from permed.evaluate.survival import harrell_c  # noqa: E402
from permed.models.deep import (  # noqa: E402
    CNNClassifier,
    DeepSurv,
    FTTransformerClassifier,
    FTTransformerSurvival,
    MLPClassifier,
)
from permed.models.deep._fusion import FusionClassifier  # noqa: E402
from permed.models.deep._sequence import EventGRUClassifier  # noqa: E402
from permed.models.risk import survival_y  # noqa: E402


def support(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    frame = pd.read_csv(data / "survival_pycox_csv" / "support.csv", index_col=0)
    X = frame.drop(columns=["duration", "event"]).to_numpy(np.float64)
    y = survival_y(frame["duration"].to_numpy(float), frame["event"].to_numpy(bool))
    order = np.random.default_rng(42).permutation(len(X))
    cut = int(0.8 * len(X))
    return X[order[:cut]], y[order[:cut]], X[order[cut:]], y[order[cut:]]


def table(n: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, width))
    logit = X[:, :5] @ np.array([1.0, -0.8, 0.6, 0.5, -0.4]) + 0.5 * X[:, 5] * X[:, 6]
    return X, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def sequences(n: int, length: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (1-based, 0 pads) of n patients; the label is whether token 7 occurs."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, 60, size=(n, length))
    ids[rng.random((n, length)) < 0.2] = 0
    y = (ids == 7).any(axis=1).astype(int) ^ (rng.random(n) < 0.05)
    return np.sort(ids, axis=1)[:, ::-1].astype(np.float64), y


def images(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.random((n, 1, size, size), dtype=np.float32) * 0.5
    y = np.arange(n) % 2
    X[y == 1, :, : size // 4, : size // 4] += 0.3
    return X, y


def timed_fit(model, X, y) -> tuple[object, float]:
    torch.cuda.synchronize()
    started = time.perf_counter()
    model.fit(X, y)
    torch.cuda.synchronize()
    return model, time.perf_counter() - started


def _split(X, y, cut):
    return (X[:cut], y[:cut]), (X[cut:], y[cut:])


def cases(data: Path) -> list[dict]:
    """(model, data, a maker taking device and epochs, the fit data, a scorer) per row."""
    X, y, X_test, y_test = support(data)
    mlp_fit, mlp_test = _split(*table(20_000, 40), 16_000)
    ft_fit, ft_test = _split(*table(5_000, 20), 4_000)
    gru_fit, gru_test = _split(*sequences(10_000), 8_000)
    cnn_fit, cnn_test = _split(*images(2_000, 64), 1_600)
    rng = np.random.default_rng(1)
    fusion_y = np.arange(2_000) % 2
    fusion_X = {"table": rng.normal(size=(2_000, 10)) + 0.4 * fusion_y[:, None],
                "image": rng.random((2_000, 1, 32, 32)) + 0.1 * fusion_y[:, None, None, None]}
    fusion_fit = ({k: v[:1_600] for k, v in fusion_X.items()}, fusion_y[:1_600])
    fusion_test = ({k: v[1_600:] for k, v in fusion_X.items()}, fusion_y[1_600:])

    def c_index(model):
        return harrell_c(y_test["time"], y_test["event"], model.predict(X_test))

    def auc(test):
        return lambda model: roc_auc_score(test[1], model.predict_proba(test[0])[:, 1])

    def fixed(epochs):
        return {"max_epochs": epochs, "patience": epochs, "random_state": 0}

    rows = [
        ("deepsurv", "SUPPORT 7,098 x 14", lambda d, e: DeepSurv(device=d, **fixed(e)),
         (X, y), c_index),
        ("ft_transformer survival", "SUPPORT 7,098 x 14",
         lambda d, e: FTTransformerSurvival(device=d, **fixed(e)), (X, y), c_index),
        ("ft_transformer", "synthetic 4,000 x 20",
         lambda d, e: FTTransformerClassifier(device=d, **fixed(e)), ft_fit, auc(ft_test)),
        ("gru (events)", "synthetic 8,000 x 20 events",
         lambda d, e: EventGRUClassifier(event_columns=20, device=d, **fixed(e)), gru_fit,
         auc(gru_test)),
        ("cnn (resnet)", "synthetic 1,600 images 64x64",
         lambda d, e: CNNClassifier((1, 64, 64), device=d, **fixed(e)), cnn_fit, auc(cnn_test)),
        ("fusion (table + image)", "synthetic 1,600 x (10 + 32x32)",
         lambda d, e: FusionClassifier({"table": (10,), "image": (1, 32, 32)}, device=d,
                                       **fixed(e)), fusion_fit, auc(fusion_test)),
    ]
    rows += [(f"mlp, batch {batch}" + (" (default)" if batch == 32 else ""),
              "synthetic 16,000 x 40",
              lambda d, e, batch=batch: MLPClassifier(batch_size=batch, device=d, **fixed(e)),
              mlp_fit, auc(mlp_test)) for batch in (32, 128, 512, 2048)]
    return [{"model": m, "data": t, "make": make, "fit": fit, "score": score}
            for m, t, make, fit, score in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--data", type=Path, default=SHARED_DATA,
                        help="the shared data folder (holding survival_pycox_csv/)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark compares CPU and GPU training, nothing written")
        return 0
    rows, results = [], []
    for case in cases(args.data):
        figures = {}
        for device in ("cpu", "cuda"):
            case["make"](device, 1).fit(*case["fit"])  # warm-up: torch's first calls on a device
            model, seconds = timed_fit(case["make"](device, args.epochs), *case["fit"])
            figures[device] = {"seconds": round(seconds, 2), "epochs": int(model.n_epochs_),
                               "score": round(float(case["score"](model)), 4)}
        auto = case["make"]("auto", 1).fit(*case["fit"]).device_
        ratio = figures["cpu"]["seconds"] / figures["cuda"]["seconds"]
        faster = "cuda" if ratio > 1 else "cpu"
        results.append({"model": case["model"], "data": case["data"], **figures,
                        "cpu_over_gpu": round(ratio, 2), "auto_device": auto,
                        "auto_is_faster": auto.split(":")[0] == faster})
        rows.append({"model": case["model"], "data": case["data"],
                     "CPU s": figures["cpu"]["seconds"], "GPU s": figures["cuda"]["seconds"],
                     "CPU/GPU": f"{ratio:.1f}x", "auto": auto,
                     "held-out score CPU / GPU":
                         f"{figures['cpu']['score']:.3f} / {figures['cuda']['score']:.3f}"})
        print(f"{case['model']}: {results[-1]}", file=sys.stderr)
    print_table(rows, list(rows[0]))
    machine = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
               "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
               "python": platform.python_version()}
    path = write_results("gpu", {"protocol": __doc__, "epochs": args.epochs,
                                 "machine": machine, "results": results})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
