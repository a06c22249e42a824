"""Score a table larger than memory comfort: stream partitions, write Parquet incrementally.

The input is read ``batch_size`` rows at a time (Parquet through ``pyarrow``'s
``iter_batches``, CSV/TSV through ``permed.ingest.read_table_chunks``, as ``read_table`` reads
them), each partition is scored with the run's ``predict_frame`` and appended to a Parquet
file. The output is written to a hidden temporary file next to ``out`` and renamed only once
every partition is written, so an interrupted run leaves no file that looks complete.

Scoring runs on ONNX Runtime when the bundle has a verified ``model.onnx`` (its probabilities
agree with the native pipeline's within ``permed.bundle._onnx.TOLERANCE`` on the check rows;
calibration, threshold, conformal sets and flags are then applied exactly as natively), else on
the native pipeline. The table's typing, out-of-range flags and referral reasons are vectorized
(``DiagnoseModel.frame_output``), so the per-row Python work is limited to referred patients.

With an engine (``--cluster``/``PERMED_DASK_SCHEDULER``), partitions are scored in waves of
``wave`` partitions through ``engine.map``; the model travels with each task (an ONNX model as
its serialized graph), so workers need no access to the run directory. Output order is input
order either way.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from permed.bundle import load_bundle
from permed.engine import Engine
from permed.exceptions import DataError
from permed.ingest._tables import SUPPORTED_SUFFIXES, missing_markers, read_table_chunks
from permed.study import FittedSchema
from permed.workflow._apply import warn_shift

__all__ = ["DEFAULT_BATCH_SIZE", "STREAM_MIN_BYTES", "OnnxScorer", "batch_scorer",
           "predict_batched", "predict_streamed", "should_stream"]

DEFAULT_BATCH_SIZE = 100_000
# predict streams without --batch-size when the input file is at least this large
STREAM_MIN_BYTES = 256 * 2**20


def should_stream(data: str | Path, out: str | Path | None, batch_size: int | None,
                  explain: bool = False) -> bool:
    """Whether ``permed predict`` streams: Parquet output, no ``--explain``, and either
    ``--batch-size`` given or an input of at least ``STREAM_MIN_BYTES``."""
    if out is None or Path(out).suffix.lower() != ".parquet" or explain:
        return False
    path = Path(data)
    return batch_size is not None or (path.is_file() and path.stat().st_size >= STREAM_MIN_BYTES)


class OnnxScorer:
    """``predict_frame`` of a diagnose model with the pipeline run by ONNX Runtime.

    Parameters
    ----------
    model : DiagnoseModel
        The bundle's model (schema, calibrator, threshold, conformal sets, OOD detector).
    onnx : OnnxModel
        Its verified ONNX graph (``permed.bundle._onnx.load_onnx``).
    """

    def __init__(self, model: Any, onnx: Any) -> None:
        self.model, self.onnx = model, onnx

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The native ``predict_frame`` table, from ONNX Runtime's probabilities."""
        schema = self.model.schema
        schema.check(frame)
        features = schema.coerce(frame)
        raw, transformed = self.onnx.run_frame(features, features=self.model.ood is not None)
        return self.model.frame_output(frame, features, raw, transformed)


def batch_scorer(run_dir: str | Path, model: Any, onnx: bool = True,
                 threads: int | None = None) -> tuple[Any, str]:
    """What scores the partitions: an :class:`OnnxScorer` when the bundle has a verified
    ``model.onnx`` (and ``onnx``), else the model itself; and why, in words."""
    if not onnx:
        return model, "native (ONNX disabled)"
    if not hasattr(model, "frame_output"):
        return model, "native (this task has no ONNX export)"
    try:
        from permed.bundle._onnx import load_onnx
    except ImportError:  # pragma: no cover - onnxruntime is a core dependency
        return model, "native (onnxruntime is not installed)"
    onnx_model, note = load_onnx(run_dir, model, threads or max(1, os.cpu_count() or 1))
    if onnx_model is None:
        return model, f"native: {note}"
    return OnnxScorer(model, onnx_model), note


def predict_batched(
    run_dir: str | Path, data: str | Path, out: str | Path, batch_size: int = DEFAULT_BATCH_SIZE,
    engine: Engine | None = None, wave: int = 4, onnx: bool = True,
    warn: Callable[[str], None] | None = None, missing: Sequence[str] = (),
) -> int:
    """Score ``data`` partition by partition with a trained run and write Parquet to ``out``.

    Parameters
    ----------
    run_dir : str or Path
        A run directory written by ``permed train``.
    data : str or Path
        A ``.parquet``, ``.csv`` or ``.tsv`` file.
    out : str or Path
        The ``.parquet`` file to write (replaced atomically at the end).
    batch_size : int, default=100000
        Rows per partition.
    engine : Engine, optional
        Where partitions are scored; in this process when None.
    wave : int, default=4
        Partitions in flight at once with an engine (bounds the memory of the client).
    onnx : bool, default=True
        Score with ONNX Runtime when the bundle has a verified ``model.onnx`` (native
        otherwise).
    warn : callable, optional
        Told each feature recorded unlike the development data (far more often missing,
        another unit or coding: ``FittedSchema.shift_warnings``), judged on the first
        partition; default: a ``ShiftWarning``.
    missing : sequence of str
        The table's own missing-value markers, read as missing beside the development study's.

    Returns
    -------
    int
        Rows scored.

    Raises
    ------
    DataError
        ``out`` is not a ``.parquet`` file, ``batch_size`` is not positive, or the input
        cannot be read.
    """
    out = Path(out)
    if out.suffix.lower() != ".parquet":
        raise DataError(f"batch scoring writes Parquet, got --out '{out}': use a .parquet name")
    if batch_size < 1:
        raise DataError(f"--batch-size must be a positive number of rows, got {batch_size}")
    model, schema = load_bundle(run_dir)
    scorer, _ = batch_scorer(run_dir, model, onnx)
    parts = _partitions(Path(data), batch_size, schema.reading(missing))
    return _write(_scored(scorer, _told(parts, schema, batch_size, warn or warn_shift), engine,
                          wave), out)


def _told(parts: Iterator[pd.DataFrame], schema: FittedSchema, batch_size: int,
          warn: Callable[[str], None]) -> Iterator[pd.DataFrame]:
    """The partitions, after telling ``warn`` the first one's shift warnings (a sample of the
    file when it fills a partition: the file is never held whole)."""
    for index, part in enumerate(parts):
        if index == 0:
            sample = f"in the first {len(part):,} rows: " if len(part) == batch_size else ""
            for message in schema.shift_warnings(part):
                warn(sample + message)
        yield part


def predict_streamed(run_dir: str | Path, data: str | Path, out: str | Path,
                     batch_size: int | None = None, cluster: str | None = None,
                     warn: Callable[[str], None] | None = None,
                     missing: Sequence[str] = ()) -> int:
    """:func:`predict_batched` on the engine of ``cluster``/``PERMED_DASK_SCHEDULER`` (if
    any); returns the rows scored."""
    from permed.engine import get_engine

    address = cluster or os.environ.get("PERMED_DASK_SCHEDULER")
    engine = get_engine(address) if address else None
    try:
        return predict_batched(run_dir, data, out, batch_size or DEFAULT_BATCH_SIZE, engine,
                               warn=warn, missing=missing)
    finally:
        if engine is not None:
            engine.close()


def _partitions(path: Path, batch_size: int, reading: dict[str, Any] | None = None
                ) -> Iterator[pd.DataFrame]:
    """The table ``batch_size`` rows at a time, read with ``FittedSchema.reading()``."""
    reading = reading or {}
    from permed.privacy import table_source

    suffix = path.suffix.lower()
    if not path.is_file() or suffix not in SUPPORTED_SUFFIXES:
        raise DataError(f"cannot read '{path}': expected an existing file ending in "
                        f"{', '.join(SUPPORTED_SUFFIXES)}")
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        source = table_source(path)  # an encrypted extract is decrypted in memory with the key
        for batch in pq.ParquetFile(source).iter_batches(batch_size=batch_size):
            yield _clean(missing_markers(batch.to_pandas(), reading.get("missing", [])), path)
        return
    # delimiter, decimal mark, encoding and the file's end as read_table decides them
    for chunk in read_table_chunks(path, batch_size, **reading):
        yield _clean(chunk, path)


def _clean(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Column names stripped, and the table's folder recorded as ``read_table`` does (image
    paths in the table are relative to it)."""
    frame.columns = [str(c).strip() for c in frame.columns]
    frame.attrs["source_dir"] = str(path.resolve().parent)
    return frame


def score_partition(item: tuple[Any, pd.DataFrame]) -> pd.DataFrame:
    """``model.predict_frame`` of one partition (the task that ``engine.map`` runs)."""
    model, frame = item
    return model.predict_frame(frame)


def _scored(model: Any, parts: Iterator[pd.DataFrame], engine: Engine | None,
            wave: int) -> Iterator[pd.DataFrame]:
    if engine is None:
        for frame in parts:
            yield model.predict_frame(frame)
        return
    pending: list[tuple[Any, pd.DataFrame]] = []
    for frame in parts:
        pending.append((model, frame))
        if len(pending) == wave:
            yield from engine.map(score_partition, pending, label="scoring partitions")
            pending = []
    if pending:
        yield from engine.map(score_partition, pending, label="scoring partitions")


def _write(frames: Iterator[pd.DataFrame], out: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    os.close(fd)
    rows = 0
    writer = None
    try:
        for frame in frames:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table.cast(writer.schema))
            rows += len(frame)
        if writer is None:
            raise DataError("the input table has no rows: nothing to score")
        writer.close()
        writer = None
        os.replace(tmp, out)
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    return rows
