"""Signatures over JSON documents (a bundle's index of file digests): HMAC-SHA256.

A document is signed over its canonical JSON (sorted keys, no spaces, ASCII) without its
``signature`` entry, with the integrity key's ``"sign"`` sub-key. HMAC needs the same key to
sign and to verify: a site that serves models on other machines gives them the integrity key
(``PERMED_INTEGRITY_KEY``), see docs/security.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from permed.exceptions import IntegrityError
from permed.privacy._keys import Key

__all__ = ["SIGNATURE_ALGORITHM", "canonical_json", "sign_document", "verify_document"]

SIGNATURE_ALGORITHM = "HMAC-SHA256"
_PURPOSE = "sign"


def canonical_json(document: Any) -> bytes:
    """One byte string per JSON value: sorted keys, no whitespace, ASCII only."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode()


def _mac(document: dict[str, Any], key: Key) -> str:
    body = {k: v for k, v in document.items() if k != "signature"}
    return hmac.new(key.derive(_PURPOSE), canonical_json(body), hashlib.sha256).hexdigest()


def sign_document(document: dict[str, Any], key: Key) -> dict[str, Any]:
    """A copy of ``document`` with a ``signature`` entry (algorithm, key id, value)."""
    signed = {k: v for k, v in document.items() if k != "signature"}
    signed["signature"] = {"algorithm": SIGNATURE_ALGORITHM, "key_id": key.key_id,
                           "value": _mac(signed, key)}
    return signed


def verify_document(document: dict[str, Any], key: Key, name: str) -> None:
    """Check a signed document; ``name`` says what it is in messages.

    Raises
    ------
    IntegrityError
        Unsigned, signed with another key, or changed after signing.
    """
    signature = document.get("signature")
    if not isinstance(signature, dict) or "value" not in signature:
        raise IntegrityError(f"{name} is not signed: refusing to trust it; retrain the model "
                             "with this version of permed")
    if signature.get("algorithm") != SIGNATURE_ALGORITHM:
        raise IntegrityError(f"{name} is signed with '{signature.get('algorithm')}', expected "
                             f"{SIGNATURE_ALGORITHM}: retrain the model")
    if signature.get("key_id") != key.key_id:
        raise IntegrityError(
            f"{name} was signed with integrity key id {signature.get('key_id')}, but this "
            f"machine's integrity key ({key.source}) has id {key.key_id}: use the key it was "
            "signed with (PERMED_INTEGRITY_KEY=FILE), see docs/security.md")
    if not hmac.compare_digest(str(signature["value"]), _mac(document, key)):
        raise IntegrityError(f"{name} has changed since it was signed (its signature does not "
                             "match): refusing to trust it; retrain or restore the run")
