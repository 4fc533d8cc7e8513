"""Secrets at rest: Fernet under a list of keys (MultiFernet), first key current.

Shared ground: the pager's routing keys and webhook secrets use it today, TOTP enrolment
secrets tomorrow. A key is any passphrase (``preflight keys new`` makes a strong one); the
32-byte Fernet key is derived from it with SHA-256, so stored ciphertexts made under
``PREFLIGHT_SECRET_KEY`` before key lists existed still decrypt. Rotation: put the new key
first, keep the old ones after it, run ``preflight keys rotate`` (every stored secret is
re-encrypted under the first key), then drop the old keys.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class CryptoError(Exception):
    """A secret can't be stored or read; the message is a sentence fit to show an operator."""


class NoKeyError(CryptoError):
    pass


class UndecryptableError(CryptoError):
    pass


def _fernet(passphrase: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(passphrase.encode()).digest()))


def new_key() -> str:
    """A fresh random key to put in PREFLIGHT_SECRET_KEYS."""
    return Fernet.generate_key().decode()


class Keyring:
    """Encrypts with the first key, decrypts with any (``cryptography``'s MultiFernet)."""

    def __init__(self, keys: Sequence[str] | str | None) -> None:
        if isinstance(keys, str):
            keys = [keys]
        self.keys = tuple(k for k in (keys or ()) if k)
        self._multi = MultiFernet([_fernet(k) for k in self.keys]) if self.keys else None

    @property
    def configured(self) -> bool:
        return self._multi is not None

    def _need(self) -> MultiFernet:
        if self._multi is None:
            raise NoKeyError("no secret key is set (PREFLIGHT_SECRET_KEYS): it is needed to store secrets encrypted")
        return self._multi

    def encrypt(self, secret: str) -> str:
        return self._need().encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._need().decrypt(token.encode()).decode()
        except InvalidToken:
            raise UndecryptableError(
                "a stored secret can't be decrypted with the configured keys (PREFLIGHT_SECRET_KEYS)"
            ) from None

    def readable(self, token: str) -> bool:
        try:
            self.decrypt(token)
        except CryptoError:
            return False
        return True

    def rotate(self, token: str) -> str:
        """The same secret encrypted under the first key (UndecryptableError if no key reads it)."""
        try:
            return self._need().rotate(token.encode()).decode()
        except InvalidToken:
            raise UndecryptableError(
                "a stored secret can't be decrypted with the configured keys (PREFLIGHT_SECRET_KEYS)"
            ) from None


def keyring(keys: Keyring | Sequence[str] | str | None) -> Keyring:
    return keys if isinstance(keys, Keyring) else Keyring(keys)
