"""Keys and AES-256-GCM at rest: owner-only key files, wrong keys and flipped bytes refused."""

from __future__ import annotations

import stat

import pandas as pd
import pytest

from permed.exceptions import IntegrityError, SecurityError
from permed.ingest import read_table
from permed.privacy import (
    Key,
    create_key_file,
    decrypt_bytes,
    decrypt_record,
    encrypt_bytes,
    encrypt_record,
    generate_key,
    integrity_key,
    read_bytes,
    read_key_file,
    save_table,
    use_key,
    write_bytes,
)
from permed.privacy._synthetic import phi_table

SECRET = b"patient Maria Lopez, MRN 00482913, SSN 123-45-6789"


def test_key_file_is_owner_only_and_never_overwritten(tmp_path):
    key = create_key_file(tmp_path / "site.key")
    assert stat.S_IMODE((tmp_path / "site.key").stat().st_mode) == 0o600
    assert read_key_file(tmp_path / "site.key").key_id == key.key_id
    assert key.material.hex() not in repr(key)
    with pytest.raises(SecurityError, match="key file '.*site.key' already exists: choose another "
                       "path"):
        create_key_file(tmp_path / "site.key")


def test_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "site.key"
    create_key_file(path)
    path.chmod(0o644)
    with pytest.raises(SecurityError, match=r"can be read by other users \(mode 0644\): restrict "
                       r"it with `chmod 600 .*site.key`"):
        read_key_file(path)


@pytest.mark.parametrize(("text", "message"), [
    ("not a key", "is not a permed key"),
    ("permed-key-v1:AAAA", "is not a permed key"),
])
def test_malformed_key_is_refused(tmp_path, text, message):
    path = tmp_path / "bad.key"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(SecurityError, match=message):
        read_key_file(path)


def test_missing_key_file_says_how_to_make_one(tmp_path):
    with pytest.raises(SecurityError, match="does not exist: check the path, or create one with "
                       "`permed keys create --out site.key`"):
        read_key_file(tmp_path / "nope.key")


def test_key_from_environment(monkeypatch):
    key = generate_key()
    monkeypatch.setenv("PERMED_KEY", key.text())
    blob = encrypt_bytes(SECRET, key, "x")
    from permed.privacy import active_key

    assert active_key().key_id == key.key_id
    assert decrypt_bytes(blob, active_key()) == SECRET


def test_round_trip_and_no_plaintext(tmp_path):
    key = generate_key()
    write_bytes(tmp_path / "f.csv", SECRET, key)
    stored = (tmp_path / "f.csv").read_bytes()
    assert stored.startswith(b"permed-enc")
    for piece in (b"Maria", b"Lopez", b"00482913", b"123-45-6789"):
        assert piece not in stored
    assert stat.S_IMODE((tmp_path / "f.csv").stat().st_mode) == 0o600
    with use_key(key):
        assert read_bytes(tmp_path / "f.csv") == SECRET


def test_wrong_key_is_refused_by_its_id():
    blob = encrypt_bytes(SECRET, generate_key(), "f.csv")
    with pytest.raises(IntegrityError, match="data was encrypted with key id [0-9a-f]{16}, but "
                       "the key given .* has id [0-9a-f]{16}: use the key it was encrypted with"):
        decrypt_bytes(blob, generate_key())


def test_wrong_key_with_a_forged_id_fails_the_tag():
    key, other = generate_key(), generate_key()
    blob = encrypt_bytes(SECRET, key, "f.csv")
    forged = Key(other.material)
    blob = blob[:12] + bytes.fromhex(forged.key_id) + blob[20:]
    with pytest.raises(IntegrityError, match=r"failed its integrity check \(AES-GCM tag "
                       "mismatch\\)"):
        decrypt_bytes(blob, forged)


@pytest.mark.parametrize("where", ["magic", "key id", "label", "nonce", "ciphertext", "tag"])
def test_one_flipped_byte_anywhere_is_an_integrity_error(where):
    key = generate_key()
    blob = bytearray(encrypt_bytes(SECRET, key, "f.csv"))
    header = 12 + 8 + 2 + len("f.csv")
    position = {"magic": 3, "key id": 14, "label": 23, "nonce": header + 4,
                "ciphertext": header + 12 + 5, "tag": len(blob) - 2}[where]
    blob[position] ^= 0x01
    with pytest.raises(IntegrityError):
        decrypt_bytes(bytes(blob), key)


def test_flipped_byte_in_a_file_is_reported_with_its_path(tmp_path):
    key = generate_key()
    path = write_bytes(tmp_path / "predictions.csv", SECRET, key)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x80
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="predictions.csv' failed its integrity check"), \
            use_key(key):
        read_bytes(path)


def test_swapped_files_are_detected_by_their_label(tmp_path):
    key = generate_key()
    blob = encrypt_bytes(SECRET, key, "model/schema.json")
    with pytest.raises(IntegrityError, match="holds the encrypted 'model/schema.json', not "
                       "'predictions.csv': files were swapped"):
        decrypt_bytes(blob, key, "predictions.csv")


def test_records_are_bound_to_their_id():
    key = generate_key()
    blob = encrypt_record("P001", SECRET, key)
    assert decrypt_record("P001", blob, key) == SECRET
    with pytest.raises(IntegrityError, match="record 'P002' failed its integrity check"):
        decrypt_record("P002", blob, key)


def test_encrypted_extract_contains_no_seeded_value_and_reads_back(tmp_path):
    frame, seeded = phi_table(10, seed=5)
    key = generate_key()
    path = save_table(frame, tmp_path / "raw.parquet", key)
    stored = path.read_bytes()
    assert not [v for values in seeded.values() for v in values
                if len(v) >= 4 and v.encode() in stored]
    with pytest.raises(SecurityError, match="raw.parquet' is encrypted: reading it needs the "
                       "data key"):
        read_table(path)
    with use_key(key):
        back, _ = read_table(path)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)


def test_integrity_key_is_created_once_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("PERMED_HOME", str(tmp_path / "home"))
    first = integrity_key()
    assert integrity_key().key_id == first.key_id
    assert stat.S_IMODE((tmp_path / "home" / "integrity.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700
    other = create_key_file(tmp_path / "site-integrity.key")
    monkeypatch.setenv("PERMED_INTEGRITY_KEY", str(tmp_path / "site-integrity.key"))
    assert integrity_key().key_id == other.key_id
