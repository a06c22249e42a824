"""Privacy and security of patient data (HIPAA Safe Harbor and technical safeguards).

- de-identification of tables (:func:`deidentify_frame`) and free text (:func:`scrub_text`),
  with the re-identification risk before and after (:func:`risk_summary`);
- keys (:func:`create_key_file`, :func:`read_key_file`, :func:`use_key`,
  :func:`integrity_key`) and AES-256-GCM encryption at rest (:func:`encrypt_bytes`,
  :func:`read_bytes`, :func:`write_bytes`), with atomic key rotation (:func:`rotate`);
- signatures of JSON documents such as a bundle's index (:func:`sign_document`);
- an append-only, hash-chained audit log (:class:`AuditLog`, :func:`verify_log`);
- differentially private training of the torch MLP (:class:`DPMLPClassifier`, needs the ``dp``
  extra).

See docs/security.md for how keys are obtained and what each safeguard protects against.
"""

from permed.privacy._audit import (
    AuditLog,
    AuditReport,
    audited,
    current_user,
    file_digest,
    home_log,
    run_log,
    set_user,
    verify_log,
)
from permed.privacy._crypto import (
    decrypt_bytes,
    decrypt_record,
    encrypt_bytes,
    encrypt_record,
    encrypted_key_id,
    is_encrypted,
    read_bytes,
    reencrypt_bytes,
    save_table,
    table_source,
    write_bytes,
)
from permed.privacy._deidentify import (
    ACTIONS,
    RESTRICTED_ZIP3,
    Deidentified,
    deidentify_frame,
    plan_actions,
    pseudonym,
    read_as_text,
)
from permed.privacy._kanon import RiskSummary, risk_summary
from permed.privacy._keys import (
    ENV_HOME,
    ENV_INTEGRITY,
    ENV_KEY,
    Key,
    active_key,
    check_owner_only,
    create_key_file,
    generate_key,
    integrity_key,
    permed_home,
    read_key_file,
    require_key,
    use_key,
)
from permed.privacy._rotate import Rotated, rotate
from permed.privacy._signing import sign_document, verify_document
from permed.privacy._text import TAGS, Scrubbed, Span, scrub_text


def __getattr__(name: str) -> object:
    # DPMLPClassifier needs torch and opacus (optional extras): imported when first used
    if name == "DPMLPClassifier":
        from permed.privacy._dp import DPMLPClassifier

        return DPMLPClassifier
    raise AttributeError(f"module 'permed.privacy' has no attribute '{name}'")


__all__ = [
    "ACTIONS",
    "ENV_HOME",
    "ENV_INTEGRITY",
    "ENV_KEY",
    "RESTRICTED_ZIP3",
    "TAGS",
    "AuditLog",
    "AuditReport",
    "DPMLPClassifier",
    "Deidentified",
    "Key",
    "RiskSummary",
    "Rotated",
    "Scrubbed",
    "Span",
    "active_key",
    "check_owner_only",
    "audited",
    "create_key_file",
    "current_user",
    "decrypt_bytes",
    "decrypt_record",
    "deidentify_frame",
    "encrypt_bytes",
    "encrypt_record",
    "encrypted_key_id",
    "file_digest",
    "generate_key",
    "home_log",
    "integrity_key",
    "is_encrypted",
    "permed_home",
    "plan_actions",
    "pseudonym",
    "read_as_text",
    "read_bytes",
    "read_key_file",
    "reencrypt_bytes",
    "require_key",
    "risk_summary",
    "rotate",
    "run_log",
    "save_table",
    "scrub_text",
    "set_user",
    "sign_document",
    "table_source",
    "use_key",
    "verify_document",
    "verify_log",
    "write_bytes",
]
