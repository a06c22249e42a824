"""AES-256-GCM encryption at rest: whole files, and single records bound to their id.

An encrypted file is a short header followed by the ciphertext::

    b"permed-enc" 0x00 0x01 | key id (8 bytes) | label length (2 bytes) | label | nonce (12) |
    ciphertext + 16-byte GCM tag

The header is the associated data, so the key id and the label (what the file is, e.g.
``predictions.csv``) are authenticated with the content: a file swapped for another, a wrong
key or one changed byte anywhere is an :class:`~permed.exceptions.IntegrityError`, never
garbage. Each encryption draws a fresh random 96-bit nonce.
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import pandas as pd
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from permed.exceptions import IntegrityError
from permed.privacy._keys import Key, require_key

__all__ = [
    "MAGIC",
    "decrypt_bytes",
    "decrypt_record",
    "encrypt_bytes",
    "encrypt_record",
    "encrypted_key_id",
    "is_encrypted",
    "read_bytes",
    "reencrypt_bytes",
    "save_table",
    "table_source",
    "write_bytes",
]

MAGIC = b"permed-enc\x00\x01"
_NONCE = 12
_KEY_ID = 8
_PURPOSE = "encrypt"
_RESTORE = "restore it from a backup"


def encrypt_bytes(data: bytes, key: Key, label: str) -> bytes:
    """Encrypt ``data`` with AES-256-GCM; ``label`` (what the data is) is authenticated too."""
    header = _header(key, label)
    nonce = os.urandom(_NONCE)
    return header + nonce + AESGCM(key.derive(_PURPOSE)).encrypt(nonce, data, header)


def decrypt_bytes(blob: bytes, key: Key, label: str | None = None, source: str = "data") -> bytes:
    """Decrypt what :func:`encrypt_bytes` wrote.

    Parameters
    ----------
    blob : bytes
        The encrypted bytes.
    key : Key
        The data key.
    label : str, optional
        The label expected; a different one means the file was swapped for another.
    source : str
        How to name the data in messages (e.g. the file path).

    Raises
    ------
    IntegrityError
        Wrong key, another file's content, or any changed byte.
    """
    key_id, found_label, offset = _parse_header(blob, source)
    if key_id != key.key_id:
        raise IntegrityError(
            f"{source} was encrypted with key id {key_id}, but the key given ({key.source}) has "
            f"id {key.key_id}: use the key it was encrypted with")
    if label is not None and found_label != label:
        raise IntegrityError(f"{source} holds the encrypted '{found_label}', not '{label}': "
                             f"files were swapped or renamed; {_RESTORE}")
    nonce, body = blob[offset:offset + _NONCE], blob[offset + _NONCE:]
    try:
        return AESGCM(key.derive(_PURPOSE)).decrypt(nonce, body, blob[:offset])
    except InvalidTag:
        raise IntegrityError(
            f"{source} failed its integrity check (AES-GCM tag mismatch): it was changed or "
            f"damaged after it was encrypted; {_RESTORE}") from None


def reencrypt_bytes(blob: bytes, old: Key, new: Key, source: str = "data") -> bytes:
    """Decrypt with ``old`` and encrypt again with ``new``, keeping the label (key rotation)."""
    _, label, _ = _parse_header(blob, source)
    return encrypt_bytes(decrypt_bytes(blob, old, label, source), new, label)


def encrypt_record(record_id: str, data: bytes, key: Key) -> bytes:
    """Encrypt one record with its patient/record id as associated data (nonce + ciphertext).

    The id is not encrypted but it is authenticated: a record moved to another id does not
    decrypt.
    """
    nonce = os.urandom(_NONCE)
    aad = b"permed-record:" + record_id.encode()
    return nonce + AESGCM(key.derive(_PURPOSE)).encrypt(nonce, data, aad)


def decrypt_record(record_id: str, blob: bytes, key: Key) -> bytes:
    """Decrypt a record written by :func:`encrypt_record` for the same id.

    Raises
    ------
    IntegrityError
        Wrong key, another record's id, or a changed byte.
    """
    aad = b"permed-record:" + record_id.encode()
    try:
        return AESGCM(key.derive(_PURPOSE)).decrypt(blob[:_NONCE], blob[_NONCE:], aad)
    except InvalidTag:
        raise IntegrityError(
            f"record '{record_id}' failed its integrity check: wrong key, a record moved to "
            "another id, or changed bytes") from None


def _header(key: Key, label: str) -> bytes:
    encoded = label.encode()
    return MAGIC + bytes.fromhex(key.key_id) + len(encoded).to_bytes(2, "big") + encoded


def _parse_header(blob: bytes, source: str) -> tuple[str, str, int]:
    start = len(MAGIC) + _KEY_ID + 2
    damaged = IntegrityError(f"{source} has a damaged encryption header: it was changed after "
                             f"it was encrypted; {_RESTORE}")
    if not blob.startswith(MAGIC) or len(blob) < start:
        raise damaged
    length = int.from_bytes(blob[start - 2:start], "big")
    if len(blob) < start + length + _NONCE + 16:
        raise damaged
    try:
        label = blob[start:start + length].decode()
    except UnicodeDecodeError:
        raise damaged from None
    return blob[len(MAGIC):len(MAGIC) + _KEY_ID].hex(), label, start + length


def is_encrypted(data: bytes | str | Path) -> bool:
    """Whether bytes (or a file) start with the encryption header.

    A header with one or two changed bytes still counts, so a flipped bit there is reported
    as damage instead of the ciphertext being read as plain data.
    """
    if not isinstance(data, bytes):
        with open(data, "rb") as handle:
            data = handle.read(len(MAGIC))
    head = data[:len(MAGIC)]
    return len(head) == len(MAGIC) and sum(a != b for a, b in zip(head, MAGIC, strict=True)) <= 2


def encrypted_key_id(path: str | Path) -> str | None:
    """The id of the key a file was encrypted with, or None for a plain file."""
    with open(path, "rb") as handle:
        head = handle.read(len(MAGIC) + _KEY_ID)
    if not is_encrypted(head):
        return None
    return head[len(MAGIC):].hex()


def read_bytes(path: str | Path, label: str | None = None) -> bytes:
    """A file's content, decrypted with the active data key when the file is encrypted.

    Raises
    ------
    SecurityError
        The file is encrypted and no data key was given.
    IntegrityError
        Wrong key, swapped file, or changed bytes.
    """
    path = Path(path)
    data = path.read_bytes()
    if not is_encrypted(data):
        return data
    key = require_key(f"'{path}' is encrypted: reading it")
    return decrypt_bytes(data, key, label, source=f"'{path}'")


def write_bytes(path: str | Path, data: bytes, key: Key | None = None,
                label: str | None = None) -> Path:
    """Write ``data`` (encrypted when ``key`` is given) atomically: a temporary file renamed.

    Encrypted files are created with mode 0600.
    """
    path = Path(path)
    if key is not None:
        data = encrypt_bytes(data, key, label or path.name)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    mode = 0o600 if is_encrypted(data) else 0o666
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_table(frame: pd.DataFrame, path: str | Path, key: Key | None = None) -> Path:
    """Write a table as CSV, TSV or Parquet (by suffix), encrypted when ``key`` is given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        data = buffer.getvalue()
    else:
        data = frame.to_csv(index=False, sep="\t" if suffix == ".tsv" else ",").encode()
    return write_bytes(path, data, key, path.name)


def table_source(path: str | Path) -> str | Path | io.BytesIO:
    """What a table reader should open: the path itself, or the decrypted bytes in memory."""
    if Path(path).is_file() and is_encrypted(Path(path)):
        return io.BytesIO(read_bytes(path))
    return path
