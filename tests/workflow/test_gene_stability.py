"""Gene stability selection: the same frequencies whether its fits run here or on workers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from permed.engine import LocalEngine
from permed.study import FittedSchema, Study, validate
from permed.workflow._genes import gene_stability


def test_worker_processes_give_the_same_genes_as_one_process():
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    expression = rng.lognormal(3.0, 1.0, size=(40, 60))
    expression[:, :5] *= np.exp(3.0 * y)[:, None]  # five genes higher in class 1
    frame = pd.DataFrame(expression, columns=[f"gene_{i}" for i in range(60)])
    frame["disease"] = np.where(y == 1, "yes", "no")
    study = Study(task="diagnose", target="disease", genes=["gene_*"])
    schema = FittedSchema.from_frame(frame, validate(frame, study).kinds, study, ["no", "yes"])
    features = schema.coerce(frame)
    alone = gene_stability(features, y, schema, seed=3, resamples=8)
    spread = gene_stability(features, y, schema, seed=3, engine=LocalEngine(2), resamples=8)
    assert spread == alone
    assert {g["gene"] for g in alone["top"][:5]} == {f"gene_{i}" for i in range(5)}
    assert {g["higher_in"] for g in alone["top"][:5]} == {"yes"}
