"""ONNX export of a diagnose pipeline, and the check that the export scores as the native model.

``permed train`` writes ``model/model.onnx`` (signed with the rest of the bundle) when the
selected pipeline converts: the preprocessing ``ColumnTransformer`` (clipping, imputation with
missing-value indicators, scaling, one-hot encoding) and a logistic regression, a random forest,
a LightGBM model, or permed's torch MLP or FT-Transformer (torch's exporter, in float64). The graph
takes one input per feature (float for numeric, text for categorical, both shaped ``(n, 1)``)
and has two outputs: the class probabilities *before* calibration, and the preprocessed feature
matrix (for the out-of-distribution check and tree SHAP).

An export is only used if it scores like the native model: :func:`load_onnx` runs both on the
model's SHAP background rows (plus one row with every value missing) and refuses the export when
a probability differs by more than :data:`TOLERANCE`. Anything else scores natively.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from permed.privacy._crypto import read_bytes, write_bytes
from permed.privacy._keys import Key

__all__ = ["FEATURES_OUTPUT", "ONNX_FILE", "TOLERANCE", "OnnxModel", "export_onnx", "load_onnx"]

ONNX_FILE = "model.onnx"
TOLERANCE = 1e-5
FEATURES_OUTPUT = "permed_features"
PROBABILITIES_OUTPUT = "probabilities"
_SUPPORTED = ("LogisticRegression", "RandomForestClassifier", "LGBMClassifier")
_TORCH = ("MLPClassifier", "FTTransformerClassifier")  # exported by torch itself
_REGISTERED: list[bool] = []


def _register_converters() -> None:
    """LightGBM (onnxmltools) and permed's QuantileClipper converters, once per process."""
    if _REGISTERED:
        return
    from lightgbm import LGBMClassifier
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    from sklearn.impute import SimpleImputer

    from permed.preprocess._clip import QuantileClipper

    update_registered_converter(
        LGBMClassifier, "LightGbmLGBMClassifier", calculate_linear_classifier_output_shapes,
        convert_lightgbm, options={"nocl": [True, False], "zipmap": [True, False, "columns"]})
    update_registered_converter(QuantileClipper, "PermedQuantileClipper", _clip_shape,
                                _clip_converter)
    update_registered_converter(SimpleImputer, "SklearnSimpleImputer", _imputer_shape,
                                _imputer_converter)
    _REGISTERED.append(True)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _imputer_shape(operator: Any) -> None:
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes

    calculate_sklearn_imputer_output_shapes(operator)
    imputer = operator.raw_operator
    shape = operator.outputs[0].type.shape
    if imputer.add_indicator and shape[1] is not None:
        shape[1] += len(imputer.indicator_.features_)


def _imputer_converter(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx's imputer, extended: text columns whose missing values are fed as "" (permed
    imputes NaN/None), and numeric columns with missing-value indicator columns appended."""
    import copy

    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
    from skl2onnx.proto import onnx_proto

    imputer = operator.raw_operator
    if isinstance(operator.inputs[0].type, StringTensorType):
        operator.raw_operator = copy.copy(imputer)
        operator.raw_operator.missing_values = ""
        try:
            convert_sklearn_imputer(scope, operator, container)
        finally:
            operator.raw_operator = imputer
        return
    x = concatenate_variables(scope, operator.inputs, container)
    names = {k: scope.get_unique_variable_name(k)
             for k in ("stats", "isnan", "imputed", "idx", "sel", "nan", "ind")}
    double = isinstance(operator.inputs[0].type, DoubleTensorType)
    dtype = onnx_proto.TensorProto.DOUBLE if double else onnx_proto.TensorProto.FLOAT
    statistics = imputer.statistics_.astype(np.float64 if double else np.float32)
    container.add_initializer(names["stats"], dtype, [1, len(statistics)], statistics.tolist())
    container.add_node("IsNaN", [x], [names["isnan"]])
    imputed = operator.outputs[0].full_name if not imputer.add_indicator else names["imputed"]
    container.add_node("Where", [names["isnan"], names["stats"], x], [imputed])
    if not imputer.add_indicator:
        return
    features = [int(i) for i in imputer.indicator_.features_]
    container.add_initializer(names["idx"], onnx_proto.TensorProto.INT64, [len(features)],
                              features)
    container.add_node("Gather", [x, names["idx"]], [names["sel"]], axis=1)
    container.add_node("IsNaN", [names["sel"]], [names["nan"]])
    container.add_node("Cast", [names["nan"]], [names["ind"]], to=dtype)
    container.add_node("Concat", [names["imputed"], names["ind"]],
                       [operator.outputs[0].full_name], axis=1)


def _clip_shape(operator: Any) -> None:
    operator.outputs[0].type = operator.inputs[0].type


def _clip_converter(scope: Any, operator: Any, container: Any) -> None:
    """``np.clip(x, low_, high_)`` with NaN passed through (it is imputed afterwards)."""
    from skl2onnx.algebra.onnx_ops import OnnxIsNaN, OnnxMax, OnnxMin, OnnxWhere
    from skl2onnx.common.data_types import DoubleTensorType

    clipper = operator.raw_operator
    opv = container.target_opset
    x = operator.inputs[0]
    dtype = np.float64 if isinstance(x.type, DoubleTensorType) else np.float32
    low = np.asarray(clipper.low_, dtype=dtype)[None, :]
    high = np.asarray(clipper.high_, dtype=dtype)[None, :]
    clipped = OnnxMin(OnnxMax(x, low, op_version=opv), high, op_version=opv)
    result = OnnxWhere(OnnxIsNaN(x, op_version=opv), x, clipped, op_version=opv,
                       output_names=operator.outputs[:1])
    result.add_to(scope, container)


def _torch_classifier(estimator: Any) -> bool:
    """permed's torch MLP (the DP-MLP too) or FT-Transformer, not scikit-learn's MLP."""
    return any(kind.__name__ in _TORCH and kind.__module__.startswith("permed.")
               for kind in type(estimator).__mro__)


def _convertible(model: Any) -> bool:
    pipeline = getattr(model, "pipeline", None)
    schema = getattr(model, "schema", None)
    return (pipeline is not None and schema is not None and len(pipeline) == 2
            and (type(pipeline[-1]).__name__ in _SUPPORTED or _torch_classifier(pipeline[-1])))


def _torch_graph(estimator: Any, width: int) -> Any:
    """A torch classifier's probabilities as an ONNX graph reading float64 ``x``: its scaler,
    its network and the softmax, as ``predict_proba`` computes them (in float64). The graph is
    traced on one row; the check rows (many at once) and the service (one) both run it."""
    import io
    import warnings

    import onnx
    import torch

    scaler = estimator.scaler_
    mean = torch.as_tensor(scaler.mean_ if scaler is not None else np.zeros(width))
    scale = torch.as_tensor(scaler.scale_ if scaler is not None else np.ones(width))

    class Probabilities(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = estimator.network_

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.network((x - mean) / scale), dim=1)

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter: no onnxscript to install
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shapes: checked after
        torch.onnx.export(Probabilities().eval(), (torch.zeros(1, width, dtype=torch.float64),),
                          buffer, input_names=["x"], output_names=[PROBABILITIES_OUTPUT],
                          dynamic_axes={"x": {0: "n"}, PROBABILITIES_OUTPUT: {0: "n"}},
                          opset_version=17, dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


def to_onnx(model: Any) -> Any:
    """The ONNX graph of a diagnose model's pipeline (see the module docstring).

    Raises
    ------
    ValueError
        The pipeline has no converter (e.g. the scorecard).
    """
    import onnx
    from onnx import compose, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    if not _convertible(model):
        raise ValueError("only logistic, random forest, LightGBM, MLP and FT-Transformer "
                         "pipelines export to ONNX")
    _register_converters()
    schema = model.schema
    preprocess, estimator = model.pipeline[0], model.pipeline[-1]
    opsets = {"": 17, "ai.onnx.ml": 3}
    # Preprocessing in double precision, as scikit-learn computes it; the estimator reads
    # float32, as scikit-learn's trees do (a float32 scaling could cross a split threshold).
    inputs = [(f.name, DoubleTensorType([None, 1]) if f.kind == "numeric"
               else StringTensorType([None, 1])) for f in schema.features]
    first = convert_sklearn(preprocess, initial_types=inputs, target_opset=opsets)
    width = len(preprocess.get_feature_names_out())
    if _torch_classifier(estimator):  # the network computes in float64
        second, precision = _torch_graph(estimator, width), onnx.TensorProto.DOUBLE
    else:
        second = convert_sklearn(estimator, initial_types=[("x", FloatTensorType([None, width]))],
                                 options={id(estimator): {"zipmap": False}}, target_opset=opsets)
        precision = onnx.TensorProto.FLOAT
    second = compose.add_prefix(second, "est_")
    matrix = first.graph.output[0].name
    first.graph.node.extend([
        helper.make_node("Cast", [matrix], ["x_estimator"], to=precision),
        helper.make_node("Identity", [matrix], [FEATURES_OUTPUT])])
    del first.graph.output[:]
    first.graph.output.extend([
        helper.make_tensor_value_info("x_estimator", precision, [None, width]),
        helper.make_tensor_value_info(FEATURES_OUTPUT, onnx.TensorProto.DOUBLE, [None, width])])
    _same_opsets(first, second)
    merged = compose.merge_models(first, second, io_map=[("x_estimator", "est_x")],
                                  outputs=[FEATURES_OUTPUT, "est_" + PROBABILITIES_OUTPUT])
    merged.graph.output[1].name = PROBABILITIES_OUTPUT
    merged.graph.node.append(helper.make_node(
        "Identity", ["est_" + PROBABILITIES_OUTPUT], [PROBABILITIES_OUTPUT]))
    merged.doc_string = json.dumps({"permed": "diagnose pipeline", "features": schema.names})
    return merged


def _same_opsets(*graphs: Any) -> None:
    """Give graphs the same IR version and operator sets (the highest of each), to merge."""
    from onnx import helper

    versions: dict[str, int] = {}
    for graph in graphs:
        for opset in graph.opset_import:
            versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    ir_version = max(graph.ir_version for graph in graphs)
    for graph in graphs:
        del graph.opset_import[:]
        graph.opset_import.extend(helper.make_opsetid(d, v) for d, v in versions.items())
        graph.ir_version = ir_version


@dataclass
class OnnxModel:
    """An ONNX Runtime session over a diagnose pipeline, fed from typed feature columns.

    Attributes
    ----------
    session : onnxruntime.InferenceSession
    kinds : list of (input name, feature name, kind)
    max_difference : float
        The largest probability difference from the native model at load time.
    """

    session: Any
    kinds: list[tuple[str, str, str]]
    number: Any = np.float32
    max_difference: float = 0.0
    # the serialized graph and the session's threads: a pickled OnnxModel (a Dask scoring
    # task) carries them and reopens its session on arrival
    content: bytes | None = field(default=None, repr=False)
    threads: int = 1

    def __getstate__(self) -> dict[str, Any]:
        if self.content is None:
            raise TypeError("this OnnxModel has no serialized graph to travel with")
        state = dict(self.__dict__)
        state["session"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.session = _session(state["content"], state["threads"])

    def feed_frame(self, typed: pd.DataFrame) -> dict[str, np.ndarray]:
        """ONNX inputs from a typed feature table (``schema.coerce``), column by column.

        The vectorized counterpart of :meth:`feed` for batch scoring: numeric columns become
        float arrays with NaN for missing, categorical ones text with "" for missing.
        """
        out = {}
        for input_name, feature, kind in self.kinds:
            column = typed[feature]
            if kind == "numeric":
                values = column.to_numpy(dtype=self.number, na_value=np.nan)
            else:
                values = column.astype(object).where(column.notna(), "").to_numpy(dtype=object)
            out[input_name] = values.reshape(-1, 1)
        return out

    def run_frame(self, typed: pd.DataFrame, features: bool = True
                  ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`run` on a typed feature table; the preprocessed matrix only if asked."""
        if not features:
            (proba,) = self.session.run([PROBABILITIES_OUTPUT], self.feed_frame(typed))
            return np.asarray(proba, dtype=np.float64), None
        proba, matrix = self.session.run([PROBABILITIES_OUTPUT, FEATURES_OUTPUT],
                                         self.feed_frame(typed))
        return np.asarray(proba, dtype=np.float64), np.asarray(matrix, dtype=np.float64)

    def feed(self, columns: dict[str, list[Any]]) -> dict[str, np.ndarray]:
        """ONNX inputs from feature values by name (None for missing)."""
        numeric, other = self._inputs
        # the numbers in one array, a row per feature (numpy reads None as NaN for a float
        # dtype): one conversion, not one per feature, for a request of one patient
        block = np.array([columns[feature] for _, feature in numeric], dtype=self.number)
        out = {name: block[j].reshape(-1, 1) for j, (name, _) in enumerate(numeric)}
        for name, feature in other:  # a missing category is fed as "": the graph imputes it
            out[name] = np.array(["" if _missing(v) else str(v) for v in columns[feature]],
                                 dtype=object).reshape(-1, 1)
        return out

    @functools.cached_property
    def _inputs(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(input name, feature name) of the numeric inputs, and of the others."""
        numeric = [(name, feature) for name, feature, kind in self.kinds if kind == "numeric"]
        other = [(name, feature) for name, feature, kind in self.kinds if kind != "numeric"]
        return numeric, other

    def run(self, columns: dict[str, list[Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Uncalibrated class probabilities and the preprocessed features (float64)."""
        proba, features = self.session.run([PROBABILITIES_OUTPUT, FEATURES_OUTPUT],
                                           self.feed(columns))
        return np.asarray(proba, dtype=np.float64), np.asarray(features, dtype=np.float64)


def _session(content: bytes, threads: int = 1) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # one request is one small matrix: threads cost more than they save, and the service
    # runs requests side by side (batch scoring asks for more)
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])


def _check_rows(model: Any) -> pd.DataFrame:
    """The rows both engines must agree on: the SHAP background and an all-missing row."""
    background = getattr(model, "background", None)
    names = model.schema.names
    empty = pd.DataFrame([dict.fromkeys(names)], columns=names)
    if background is None:
        return empty
    rows: pd.DataFrame = pd.concat([background[names], empty], ignore_index=True)
    return rows


def _columns(frame: pd.DataFrame, schema: Any) -> dict[str, list[Any]]:
    typed = schema.coerce(frame)
    columns: dict[str, list[Any]] = {}
    for feature in schema.features:
        values = typed[feature.name].tolist()
        columns[feature.name] = [None if v is None or (isinstance(v, float) and np.isnan(v))
                                 else v for v in values]
    return columns


def compare(onnx_model: OnnxModel, model: Any) -> float:
    """Largest absolute difference between ONNX and native probabilities on the check rows."""
    rows = _check_rows(model)
    native = model.pipeline.predict_proba(model.schema.coerce(rows))
    proba, _ = onnx_model.run(_columns(rows, model.schema))
    return float(np.max(np.abs(proba - native)))


def _open(content: bytes, model: Any, threads: int = 1) -> OnnxModel:
    session = _session(content, threads)
    names = [i.name for i in session.get_inputs()]
    kinds = [(name, f.name, f.kind) for name, f in zip(names, model.schema.features,
                                                        strict=True)]
    double = any(i.type == "tensor(double)" for i in session.get_inputs())
    return OnnxModel(session, kinds, np.float64 if double else np.float32, content=content,
                     threads=threads)


def export_onnx(model: Any, directory: str | Path, key: Key | None = None) -> Path | None:
    """Write ``model.onnx`` into a bundle folder when the model converts and scores alike.

    Parameters
    ----------
    model : DiagnoseModel
        The fitted model.
    directory : str or Path
        The bundle folder (``model/``), before the bundle is signed.
    key : Key, optional
        A data key: the file is encrypted at rest like the rest of the bundle.

    Returns
    -------
    Path or None
        The file written, or None when the model does not export (it is then served natively).
    """
    if not _convertible(model):
        return None
    try:
        content = to_onnx(model).SerializeToString()
        if compare(_open(content, model), model) > TOLERANCE:
            return None
    except Exception:  # noqa: BLE001 - any converter failure means: serve natively
        return None
    path = Path(directory) / ONNX_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, content, key, f"model/{ONNX_FILE}")
    return path


def load_onnx(run_dir: str | Path, model: Any, threads: int = 1
              ) -> tuple[OnnxModel | None, str]:
    """The run's ONNX model if it exists, verifies and matches the native model.

    The file's SHA-256 is checked against the bundle's signed index before ONNX Runtime reads
    it; its probabilities are then compared with the native model's on the check rows.
    ``threads`` is the session's intra-op threads (1 for the service, more for batch scoring).

    Returns
    -------
    (OnnxModel or None, str)
        The model (None to score natively) and why, in words.
    """
    from permed.bundle._bundle import _directory, _verified

    directory = _directory(run_dir)
    path = directory / ONNX_FILE
    if not path.is_file():
        return None, "no model.onnx in the bundle (this model family does not export)"
    _, index = _verified(run_dir)
    content = path.read_bytes()
    if hashlib.sha256(content).hexdigest() != index["files"].get(ONNX_FILE):
        return None, "model.onnx changed after the bundle was verified: scoring natively"
    content = read_bytes(path, f"model/{ONNX_FILE}")
    try:
        onnx_model = _open(content, model, threads)
        difference = compare(onnx_model, model)
    except Exception as exc:  # noqa: BLE001 - a runtime that cannot run it: native scoring
        return None, f"ONNX Runtime could not run model.onnx ({type(exc).__name__}): native"
    if difference > TOLERANCE:
        return None, (f"model.onnx differs from the native model by {difference:.2g} "
                      f"(> {TOLERANCE:g}) on the check rows: scoring natively")
    onnx_model.max_difference = difference
    return onnx_model, f"ONNX Runtime (max difference from native {difference:.1e})"
