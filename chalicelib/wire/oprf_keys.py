"""Sealbox's use of the OPRF: per-account keys, their certificates, the wire messages.

docs/spec/oprf.md is the specification; in short:

* The OPRF secret (its own Secrets Manager secret) holds, per **key version**
  ``v``, a 32-byte ``oprf_seed`` and a 32-byte Ed25519 ``root_seed``.
* Every account has its own VOPRF key, derived with RFC 9497
  ``DeriveKeyPair(oprf_seed, "sealbox/v1/oprf-account-key" || 0x00 || identity)``.
  Deriving it from the (normalised) username, not looking it up, means an
  unknown username gets the same kind of answer as a known one, every time
  (no existence oracle), and an evaluation charged to one account is useless
  for guessing another's password (it is under another key).
* The device can't know an account's public key in advance, so the server
  *certifies* it: an Ed25519 signature by the version's root key over
  ``"sealbox/v1/oprf-account-key-cert" || 0x00 || u32(v) || lp16(identity) ||
  pkS``.  The device pins the root public keys (SDK configuration, one per
  key version), checks the certificate, then the VOPRF proof against the
  certified key: a server answering under any other key fails closed.

The server side needs only :class:`OprfKey`; the device side only
:func:`open_evaluation` and :class:`OprfRoots`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from chalicelib import crypto
from chalicelib.wire import oprf
from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.binary import lp16, u8, u32
from chalicelib.wire.strictjson import StrictJSONError, loads_strict

__all__ = [
    "ACCOUNT_KEY_INFO",
    "CERTIFICATE_LABEL",
    "MAX_KEY_VERSION",
    "MalformedOprfSecret",
    "OprfAnswerError",
    "OprfEvaluation",
    "OprfKey",
    "OprfKeys",
    "OprfRoots",
    "account_info",
    "encode_oprf_secret",
    "open_evaluation",
    "parse_oprf_secret",
]

ACCOUNT_KEY_INFO: Final = b"sealbox/v1/oprf-account-key"
CERTIFICATE_LABEL: Final = b"sealbox/v1/oprf-account-key-cert"
SECRET_FORMAT: Final = 1
MAX_KEY_VERSION: Final = 2**31 - 1
_SEED_SIZE: Final = 32


class MalformedOprfSecret(ValueError):
    """The OPRF secret's value is not in the expected format (message names the member)."""


class OprfAnswerError(ValueError):
    """A server's OPRF answer is malformed, uncertified or unproven: fail closed."""


def account_info(identity: str) -> bytes:
    """The DeriveKeyPair ``info`` of ``identity``'s account key."""
    return ACCOUNT_KEY_INFO + b"\x00" + identity.encode("ascii")


def certificate_message(version: int, identity: str, account_key: bytes) -> bytes:
    """What the root key signs for one account key."""
    return b"".join(
        (
            CERTIFICATE_LABEL,
            u8(0),
            u32(version),
            lp16(identity.encode("ascii")),
            account_key,
        )
    )


@dataclass(frozen=True)
class OprfEvaluation:
    """One evaluation as it travels: under which key version, and its proofs."""

    key_version: int
    evaluated_element: bytes
    proof: bytes
    account_key: bytes
    certificate: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "key_version": self.key_version,
            "evaluated_element": b64url_encode(self.evaluated_element),
            "proof": b64url_encode(self.proof),
            "account_key": b64url_encode(self.account_key),
            "certificate": b64url_encode(self.certificate),
        }

    @classmethod
    def from_json(cls, value: object) -> OprfEvaluation:
        """Parse a server's evaluation object.

        Raises:
            OprfAnswerError: missing or ill-typed members, wrong sizes.
        """
        if not isinstance(value, dict):
            raise OprfAnswerError("an OPRF evaluation is an object")
        try:
            version = value["key_version"]
            if type(version) is not int or not 1 <= version <= MAX_KEY_VERSION:
                raise OprfAnswerError("bad OPRF key version")
            sizes = {
                "evaluated_element": oprf.ELEMENT_SIZE,
                "proof": oprf.PROOF_SIZE,
                "account_key": oprf.ELEMENT_SIZE,
                "certificate": crypto.ED25519_SIGNATURE_SIZE,
            }
            raw = {}
            for name, size in sizes.items():
                member = value[name]
                if not isinstance(member, str):
                    raise OprfAnswerError(f"{name} is not a string")
                decoded = b64url_decode(member, max_len=size)
                if len(decoded) != size:
                    raise OprfAnswerError(f"{name} has the wrong size")
                raw[name] = decoded
        except (KeyError, ValueError) as exc:
            if isinstance(exc, OprfAnswerError):
                raise
            raise OprfAnswerError("malformed OPRF evaluation") from exc
        return cls(key_version=version, **raw)


@dataclass(frozen=True, repr=False)
class OprfKey:
    """One version of the server's OPRF key: evaluates for any account."""

    version: int
    oprf_seed: bytes = field(repr=False)
    root_seed: bytes = field(repr=False)
    created_at: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.version <= MAX_KEY_VERSION:
            raise ValueError("OPRF key versions are 1 to 2^31-1")
        if len(self.oprf_seed) != _SEED_SIZE or len(self.root_seed) != _SEED_SIZE:
            raise ValueError("OPRF seeds are 32 bytes")

    def __repr__(self) -> str:
        return f"OprfKey(version={self.version}, root={b64url_encode(self.root_public)[:8]}…)"

    __str__ = __repr__

    @classmethod
    def generate(cls, version: int, *, created_at: int) -> OprfKey:
        return cls(
            version=version,
            oprf_seed=crypto.random_bytes(_SEED_SIZE),
            root_seed=crypto.random_bytes(_SEED_SIZE),
            created_at=created_at,
        )

    @property
    def root_public(self) -> bytes:
        """The root public key devices pin for this version (Ed25519, 32 bytes)."""
        return crypto.ed25519_public_raw(
            crypto.ed25519_private_from_raw(self.root_seed).public_key()
        )

    def account_key(self, identity: str) -> tuple[bytes, bytes]:
        """``(skS, pkS)`` of ``identity`` (a normalised identity) under this version."""
        return oprf.derive_key_pair(self.oprf_seed, account_info(identity), oprf.MODE_VOPRF)

    def output(self, identity: str, private_input: bytes) -> bytes:
        """The PRF output for ``identity`` and ``private_input``, computed directly.

        What a device gets through the blinded protocol; never on a request
        path (the fleet's privacy audit and tests use it).
        """
        secret, _ = self.account_key(identity)
        return oprf.evaluate(secret, private_input, oprf.MODE_VOPRF)

    def evaluate(self, identity: str, blinded_element: bytes) -> OprfEvaluation:
        """Evaluate, prove and certify for ``identity``.

        Raises:
            chalicelib.wire.oprf.DeserializeError: not a valid element.
        """
        secret, public = self.account_key(identity)
        evaluated, proof = oprf.blind_evaluate_voprf(secret, public, blinded_element)
        root = crypto.ed25519_private_from_raw(self.root_seed)
        certificate = root.sign(certificate_message(self.version, identity, public))
        return OprfEvaluation(
            key_version=self.version,
            evaluated_element=evaluated,
            proof=proof,
            account_key=public,
            certificate=certificate,
        )


@dataclass(frozen=True)
class OprfKeys:
    """The versions a server evaluates under: current, and previous in a rotation window."""

    current: OprfKey
    previous: OprfKey | None

    def all(self) -> tuple[OprfKey, ...]:
        return (self.current,) if self.previous is None else (self.current, self.previous)


# --- the secret ---------------------------------------------------------------------


def encode_oprf_secret(key: OprfKey) -> str:
    """The Secrets Manager value of one OPRF key version (JSON)."""
    return json.dumps(
        {
            "format": SECRET_FORMAT,
            "version": key.version,
            "oprf_seed": b64url_encode(key.oprf_seed),
            "root_seed": b64url_encode(key.root_seed),
            "created_at": key.created_at,
        },
        sort_keys=True,
    )


def parse_oprf_secret(value: str) -> OprfKey:
    """Parse one OPRF key version.

    Raises:
        MalformedOprfSecret: not the format above (the message names the
            member at fault, never a value).
    """
    try:
        obj = loads_strict(value)
    except StrictJSONError as exc:
        raise MalformedOprfSecret("the OPRF secret is not a JSON object") from exc
    if not isinstance(obj, dict) or obj.get("format") != SECRET_FORMAT:
        raise MalformedOprfSecret("the OPRF secret has an unknown format")
    version, created_at = obj.get("version"), obj.get("created_at", 0)
    if type(version) is not int or not 1 <= version <= MAX_KEY_VERSION:
        raise MalformedOprfSecret("the OPRF secret's version is invalid")
    if type(created_at) is not int:
        raise MalformedOprfSecret("the OPRF secret's created_at is invalid")
    seeds = {}
    for name in ("oprf_seed", "root_seed"):
        member = obj.get(name)
        try:
            seeds[name] = b64url_decode(member if isinstance(member, str) else "", max_len=32)
        except ValueError as exc:
            raise MalformedOprfSecret(f"the OPRF secret's {name} is invalid") from exc
        if len(seeds[name]) != _SEED_SIZE:
            raise MalformedOprfSecret(f"the OPRF secret's {name} is invalid")
    return OprfKey(version=version, created_at=created_at, **seeds)


# --- the device side ------------------------------------------------------------------


@dataclass(frozen=True)
class OprfRoots:
    """The root public keys a device pins, by OPRF key version (SDK configuration)."""

    roots: Mapping[int, bytes]

    def __post_init__(self) -> None:
        if not self.roots:
            raise ValueError("pin at least one OPRF root key")
        for version, root in self.roots.items():
            if type(version) is not int or not 1 <= version <= MAX_KEY_VERSION:
                raise ValueError("OPRF key versions are 1 to 2^31-1")
            crypto.ed25519_public_from_raw(root)

    @property
    def current(self) -> int:
        """The newest pinned version."""
        return max(self.roots)


def open_evaluation(
    roots: OprfRoots,
    identity: str,
    private_input: bytes,
    blind: bytes,
    blinded_element: bytes,
    evaluation: OprfEvaluation,
) -> bytes:
    """Check a server's evaluation and return the 64-byte OPRF output.

    The certificate must verify under the pinned root of its version, and the
    VOPRF proof under the certified account key.

    Raises:
        OprfAnswerError: an unpinned version, a bad certificate, or a proof
            that does not verify (the answer is not from the pinned key).
    """
    root = roots.roots.get(evaluation.key_version)
    if root is None:
        raise OprfAnswerError("the answer is under an OPRF key version this device does not pin")
    try:
        crypto.ed25519_verify(
            crypto.ed25519_public_from_raw(root),
            evaluation.certificate,
            certificate_message(evaluation.key_version, identity, evaluation.account_key),
        )
    except crypto.InvalidSignature as exc:
        raise OprfAnswerError("the OPRF account key is not certified by the pinned root") from exc
    try:
        return oprf.finalize(
            private_input,
            blind,
            evaluation.evaluated_element,
            oprf.MODE_VOPRF,
            blinded_element=blinded_element,
            server_public_key=oprf.check_element(evaluation.account_key),
            proof=evaluation.proof,
        )
    except oprf.OprfError as exc:
        raise OprfAnswerError("the OPRF proof does not verify") from exc
