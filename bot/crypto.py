"""Secrets at rest: Fernet under a list of keys (MultiFernet), first key current.

Shared ground: the pager's routing keys and webhook secrets use it today, TOTP enrolment
secrets tomorrow. A key is any passphrase (``preflight keys new`` makes a strong one); the
32-byte Fernet key is derived from it with SHA-256, so stored ciphertexts made under
``PREFLIGHT_SECRET_KEY`` before key lists existed still decrypt. Rotation: put the new key
first, keep the old ones after it, run ``preflight keys rotate`` (every stored secret is
re-encrypted under the first key), then drop the old keys.

The same keys sign the attestation export's chain head (``sign`` / ``check``): HMAC-SHA256
under a subkey derived from each key with HKDF-SHA256 (``info`` names the purpose, so the
signing key is independent of the encryption key). The first key signs; a signature made
under any listed key verifies, so keep a retired key in the list for as long as the exports
it signed must prove their origin. A key id (a hash of the derived subkey, which reveals
nothing of the key) is written beside the signature so a verifier can tell "signed by a key
I don't hold" from "signed by my key but altered".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.fernet import Fernet, MultiFernet

# ``cryptography`` is imported when a secret is first encrypted, decrypted or signed, not when a
# Keyring is made: serving a Slack request rarely needs it (bench/README.md, start-up).

SIGNING_INFO = b"ib-preflight export signature v1"


class CryptoError(Exception):
    """A secret can't be stored or read; the message is a sentence fit to show an operator."""


class NoKeyError(CryptoError):
    pass


class UndecryptableError(CryptoError):
    pass


def _fernet(passphrase: str) -> Fernet:
    from cryptography.fernet import Fernet

    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(passphrase.encode()).digest()))


def _read(step: Callable[[bytes], bytes], token: str) -> str:
    """``step`` (MultiFernet's decrypt or rotate) of a stored ``token``; UndecryptableError
    when none of the configured keys reads it."""
    from cryptography.fernet import InvalidToken

    try:
        return step(token.encode()).decode()
    except InvalidToken:
        raise UndecryptableError(
            "a stored secret can't be decrypted with the configured keys (PREFLIGHT_SECRET_KEYS)"
        ) from None


def _signing_key(passphrase: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SIGNING_INFO).derive(passphrase.encode())


def _key_id(signing_key: bytes) -> str:
    return hashlib.sha256(b"ib-preflight key id\n" + signing_key).hexdigest()[:16]


class SignatureCheck(StrEnum):
    VALID = "valid"  # made under one of the configured keys over exactly this message
    MISMATCH = "mismatch"  # the key id is one of ours but the signature is not over this message
    UNKNOWN_KEY = "unknown_key"  # made under a key this process does not hold
    NO_KEYS = "no_keys"  # this process has no keys to check with


def new_key() -> str:
    """A fresh random key to put in PREFLIGHT_SECRET_KEYS."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


class Keyring:
    """Encrypts with the first key, decrypts with any (``cryptography``'s MultiFernet)."""

    def __init__(self, keys: Sequence[str] | str | None) -> None:
        if isinstance(keys, str):
            keys = [keys]
        self.keys = tuple(k for k in (keys or ()) if k)
        self._multi: MultiFernet | None = None  # made on first use

    @property
    def configured(self) -> bool:
        return bool(self.keys)

    def _need(self) -> MultiFernet:
        if not self.keys:
            raise NoKeyError("no secret key is set (PREFLIGHT_SECRET_KEYS): it is needed to store secrets encrypted")
        if self._multi is None:  # two threads racing here build two equal MultiFernets: harmless
            from cryptography.fernet import MultiFernet

            self._multi = MultiFernet([_fernet(k) for k in self.keys])
        return self._multi

    def encrypt(self, secret: str) -> str:
        return self._need().encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        return _read(self._need().decrypt, token)

    def sign(self, message: bytes) -> tuple[str, str]:
        """(key id, HMAC-SHA256 hex) of ``message`` under the current key's signing subkey."""
        self._need()
        key = _signing_key(self.keys[0])
        return _key_id(key), hmac.new(key, message, hashlib.sha256).hexdigest()

    def check(self, message: bytes, key_id: str, signature: str) -> SignatureCheck:
        """Whether ``signature`` (hex) over ``message`` was made under the listed key ``key_id``."""
        if not self.keys:
            return SignatureCheck.NO_KEYS
        for passphrase in self.keys:
            key = _signing_key(passphrase)
            if hmac.compare_digest(_key_id(key).encode(), key_id.encode()):
                expected = hmac.new(key, message, hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(expected.encode(), signature.encode())
                return SignatureCheck.VALID if ok else SignatureCheck.MISMATCH
        return SignatureCheck.UNKNOWN_KEY

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(_key_id(_signing_key(k)) for k in self.keys)

    def readable(self, token: str) -> bool:
        try:
            self.decrypt(token)
        except CryptoError:
            return False
        return True

    def rotate(self, token: str) -> str:
        """The same secret encrypted under the first key (UndecryptableError if no key reads it)."""
        return _read(self._need().rotate, token)


def keyring(keys: Keyring | Sequence[str] | str | None) -> Keyring:
    return keys if isinstance(keys, Keyring) else Keyring(keys)
