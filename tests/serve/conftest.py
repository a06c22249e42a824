"""A live permed service on 127.0.0.1 over real sockets: two small trained runs, a SQLite file,
and one user per role.

The runs are trained once per session: breast cancer with LightGBM (ONNX + cached TreeSHAP)
and a synthetic vital-signs cohort whose study maps every feature to FHIR (logistic).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn

from permed.serve import Settings, create_app
from permed.study import ColumnSpec, Study
from permed.workflow import TrainConfig, train_run

VITALS_FHIR = {
    "age": "Patient.birthDate",
    "sex": {"path": "Patient.gender", "map": {"male": "M", "female": "F"}},
    "heart_rate": {"loinc": "8867-4", "unit": "/min"},
    "resp_rate": {"loinc": "9279-1", "unit": "/min"},
    "temperature": {"loinc": "8310-5", "unit": "[degF]"},
    "spo2": {"loinc": "2708-6", "unit": "%"},
    "weight": {"loinc": "29463-7", "unit": "[lb_av]"},
}


def vitals_cohort(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Children with vital signs; admission depends on fever, breathing and oxygen."""
    rng = np.random.default_rng(seed)
    age = rng.integers(1, 19, n)
    temperature = rng.normal(99.5, 1.6, n).round(1)
    resp = rng.normal(22, 5, n).round()
    spo2 = np.clip(rng.normal(96, 2.5, n), 80, 100).round(1)
    logit = 0.6 * (temperature - 100) + 0.12 * (resp - 22) - 0.5 * (spo2 - 96) - 1.0
    return pd.DataFrame({
        "age": age, "sex": rng.choice(["F", "M"], n),
        "heart_rate": rng.normal(100, 15, n).round(), "resp_rate": resp,
        "temperature": temperature, "spo2": spo2,
        "weight": (age * 6 + rng.normal(20, 8, n)).round(1),
        "admitted": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)})


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from permed.ingest import export_dataset

    tmp = tmp_path_factory.mktemp("serve-runs")
    bc = train_run(export_dataset("breast_cancer", tmp / "bc.csv"),
                   Study(task="diagnose", target="diagnosis"),
                   TrainConfig(models=["lightgbm"], cv=3, n_boot=100), tmp / "bc")
    vitals_csv = tmp / "vitals.csv"
    vitals_cohort().to_csv(vitals_csv, index=False)
    study = Study(task="diagnose", target="admitted", fhir=VITALS_FHIR, columns={
        "temperature": ColumnSpec(unit="[degF]", valid_range=(86.0, 113.0)),
        "weight": ColumnSpec(unit="[lb_av]"), "spo2": ColumnSpec(unit="%")})
    vitals = train_run(vitals_csv, study, TrainConfig(models=["logistic"], cv=3, n_boot=100),
                       tmp / "vitals")
    return {"bc": bc, "vitals": vitals}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Live:
    """A running service: its URL, app and one API key per user."""

    url: str
    app: Any
    keys: dict[str, str]
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, user: str | None = None, **headers: str) -> httpx.Client:
        if user is not None:
            headers["Authorization"] = f"Bearer {self.keys[user]}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.app.state.storage.dispose()


def start(settings: Settings, users: dict[str, str]) -> Live:
    """Serve ``create_app(settings)`` with uvicorn in a thread; add ``users`` (name -> role)."""
    app = create_app(settings)
    keys = {name: app.state.storage.add_user(name, role) for name, role in users.items()}
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    return Live(f"http://127.0.0.1:{port}", app, keys, server, thread)


@pytest.fixture(scope="session")
def vitals_fhir() -> dict[str, Any]:
    return VITALS_FHIR


@pytest.fixture(scope="session")
def start_service():
    """Start another service (its own settings and users); stop it with ``.stop()``."""
    return start


USERS = {"alice": "clinician", "bob": "clinician", "sam": "scientist", "ada": "admin"}


@pytest.fixture(scope="session")
def live(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    settings = Settings(runs=runs, data_dir=tmp_path_factory.mktemp("serve-data"),
                        database_url=None, rate_limit=0, max_auth_failures=0, max_batch=20,
                        max_body_bytes=200_000)
    service = start(settings, USERS)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def bc_patients(runs: dict[str, Path]) -> list[dict[str, Any]]:
    frame = pd.read_csv(runs["bc"].parent / "bc.csv").drop(columns=["diagnosis"])
    return frame.iloc[:5].to_dict("records")


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextmanager
def _chromium_page(url: str) -> Iterator[Any]:
    """A headless Chromium page (Debian's package, driven by Playwright) opened at ``url``;
    ``page.problems`` collects console errors and page errors."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: `make test` installs Debian's chromium package")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(90_000)  # a loaded CI machine
        # console errors such as a Content-Security-Policy violation (refused requests, like the
        # wrong key's 401, are logged too and are expected)
        page.problems = []
        page.on("console", lambda m: m.type == "error" and not m.text.startswith(
            "Failed to load resource") and page.problems.append(m.text))
        page.on("pageerror", lambda e: page.problems.append(str(e)))
        page.goto(url)
        yield page
        browser.close()


@pytest.fixture(scope="session")
def chromium_page():
    """Open a headless Chromium page at a URL: ``with chromium_page(url) as page: ...``."""
    return _chromium_page
