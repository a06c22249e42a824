"""Key rotation: re-encrypt run directories and encrypted files under a new data key, atomically.

A single file is re-encrypted into a temporary file and renamed over the original. A run
directory is copied aside, every encrypted file of the copy is re-encrypted, the bundle is
re-signed with the new digests, the copy's audit log records the rotation, and the copy then
takes the run's place in one atomic exchange of the two folders (Linux ``renameat2`` with
``RENAME_EXCHANGE``). A crash at any point before the exchange leaves the run untouched,
readable with the old key; after it, the run is whole under the new key. Copies left behind by
a crash are removed by the next rotation.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from permed.exceptions import SecurityError
from permed.privacy._audit import LOG_NAME, AuditLog
from permed.privacy._crypto import encrypted_key_id, is_encrypted, reencrypt_bytes, write_bytes
from permed.privacy._keys import Key, use_key

__all__ = ["Rotated", "rotate"]

# Test hook: seconds to pause after each re-encrypted file, so a test can kill a rotation
# half-way (tests/privacy/test_rotation.py). Unset in normal use.
ENV_PAUSE = "PERMED_TEST_ROTATE_PAUSE"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@dataclass(frozen=True)
class Rotated:
    """One rotated path and how many files in it were re-encrypted."""

    path: Path
    files: int


def rotate(paths: Iterable[str | Path], old: Key, new: Key) -> list[Rotated]:
    """Re-encrypt run directories and encrypted files from ``old`` to ``new``.

    Files already under ``new`` are left as they are, so a rotation can be run again.

    Raises
    ------
    SecurityError
        A path does not exist, or holds nothing encrypted.
    IntegrityError
        A file is not under ``old`` (or ``new``), or was changed.
    BundleError
        A run's bundle does not verify.
    """
    done = []
    for path in map(Path, paths):
        if path.is_dir():
            done.append(_rotate_run(path, old, new))
        elif path.is_file():
            done.append(_rotate_file(path, old, new))
        else:
            raise SecurityError(f"'{path}' does not exist: give run directories or encrypted files")
    return done


def _rotate_file(path: Path, old: Key, new: Key) -> Rotated:
    if not is_encrypted(path):
        raise SecurityError(f"'{path}' is not encrypted: there is nothing to rotate")
    if encrypted_key_id(path) == new.key_id:
        return Rotated(path, 0)
    write_bytes(path, reencrypt_bytes(path.read_bytes(), old, new, f"'{path}'"))
    return Rotated(path, 1)


def _rotate_run(run_dir: Path, old: Key, new: Key) -> Rotated:
    from permed.bundle import read_schema, reseal_bundle

    if not (run_dir / "manifest.json").is_file():
        raise SecurityError(f"'{run_dir}' is not a permed run directory (no manifest.json)")
    has_bundle = (run_dir / "model" / "bundle.json").is_file()  # evaluate's folders have none
    found = [p for p in sorted(run_dir.rglob("*")) if p.is_file() and is_encrypted(p)]
    if found and all(encrypted_key_id(p) == new.key_id for p in found):
        return Rotated(run_dir, 0)  # rotated already (a run is never half rotated)
    if has_bundle:
        with use_key(old):
            read_schema(run_dir)  # the signature, every digest and the old key are checked first
    _remove_stale_copies(run_dir)
    copy = run_dir.parent / f".{run_dir.name}.rotate-{uuid.uuid4().hex[:8]}"
    shutil.copytree(run_dir, copy)
    try:
        encrypted = [p for p in sorted(copy.rglob("*")) if p.is_file() and is_encrypted(p)]
        if not encrypted:
            raise SecurityError(f"'{run_dir}' holds no encrypted file: train it with --encrypt")
        for path in encrypted:
            if encrypted_key_id(path) != new.key_id:
                source = f"'{run_dir / path.relative_to(copy)}'"
                write_bytes(path, reencrypt_bytes(path.read_bytes(), old, new, source))
            _test_pause(path.relative_to(copy))
        if has_bundle:
            reseal_bundle(copy, new)
        AuditLog(copy / LOG_NAME).append("rotate", old_key=old.key_id, new_key=new.key_id,
                                         files=len(encrypted))
        _sync_tree(copy)
        _exchange(copy, run_dir)
    except BaseException:
        if not (run_dir / "manifest.json").is_file():  # pragma: no cover - exchange half-done
            raise
        shutil.rmtree(copy, ignore_errors=True)
        raise
    shutil.rmtree(copy, ignore_errors=True)  # now the old run
    return Rotated(run_dir, len(encrypted))


def _remove_stale_copies(run_dir: Path) -> None:
    for stale in run_dir.parent.glob(f".{run_dir.name}.rotate-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _test_pause(name: Path) -> None:
    pause = os.environ.get(ENV_PAUSE)
    if pause:
        print(f"rotate: re-encrypted {name}", file=sys.stderr, flush=True)
        time.sleep(float(pause))


def _sync_tree(folder: Path) -> None:
    """Flush every file of ``folder`` to disk before it replaces the run."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _exchange(first: Path, second: Path) -> None:
    """Swap two folders atomically; fall back to two renames where the system cannot.

    The fallback leaves a window of two renames in which ``second`` does not exist; the old run
    is then in ``first`` (the next rotation removes it).
    """
    rename = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if rename is not None:
        result = rename(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
                        _RENAME_EXCHANGE)
        if result == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), str(second))
    aside = first.with_name(first.name + "-old")
    os.replace(second, aside)
    os.replace(first, second)
    os.replace(aside, first)
