"""RFC 9497 oblivious PRF, suite ristretto255-SHA512, modes OPRF and VOPRF.

The protocol layer only: expand_message_xmd (RFC 9380 §5.3.1), HashToGroup,
HashToScalar, DeriveKeyPair, Blind, BlindEvaluate, the DLEQ proof
(GenerateProof / VerifyProof with ComputeComposites) and Finalize.  Every
group operation comes from libsodium through :mod:`chalicelib.crypto`; this
module composes them exactly as the RFC's pseudocode does, and the RFC's
appendix vectors check it (``tests/vectors/test_oprf_rfc9497.py``).

Both sides import it: the backend evaluates (:func:`blind_evaluate_voprf`),
the device blinds, verifies the proof and finalizes.  It is pure (no I/O),
and the randomized functions take their randomness as an optional argument
so the vector tests can inject the RFC's values.

Errors (one tree, messages carry no secret):

* :class:`InvalidInputError` -- the input hashes to the identity element
  (RFC 9497 §3.3.1, probability ~2^-252; raised rather than ignored);
* :class:`DeserializeError` -- a peer's element or scalar is not canonical,
  or is the identity;
* :class:`VerifyError` -- a VOPRF proof does not verify (a hostile or broken
  server); the device must fail closed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Final

from chalicelib import crypto

__all__ = [
    "ELEMENT_SIZE",
    "MODE_OPRF",
    "MODE_VOPRF",
    "OUTPUT_SIZE",
    "PROOF_SIZE",
    "SCALAR_SIZE",
    "SUITE_ID",
    "DeserializeError",
    "InvalidInputError",
    "OprfError",
    "VerifyError",
    "blind",
    "blind_evaluate",
    "blind_evaluate_voprf",
    "check_element",
    "derive_key_pair",
    "evaluate",
    "expand_message_xmd",
    "finalize",
    "generate_proof",
    "hash_to_group",
    "hash_to_scalar",
    "public_key",
    "verify_proof",
]

SUITE_ID: Final = b"ristretto255-SHA512"
MODE_OPRF: Final = 0
MODE_VOPRF: Final = 1
ELEMENT_SIZE: Final = crypto.RISTRETTO_ELEMENT_SIZE
SCALAR_SIZE: Final = crypto.RISTRETTO_SCALAR_SIZE
PROOF_SIZE: Final = 2 * SCALAR_SIZE
OUTPUT_SIZE: Final = 64  # SHA-512
# RFC 9497 §3.1: inputs are at most 2^16 - 1 bytes (they are length-prefixed).
MAX_INPUT_SIZE: Final = 0xFFFF
_HASH_BLOCK: Final = 128  # SHA-512's input block (s_in_bytes)
_HASH_SIZE: Final = 64
_UNIFORM_SIZE: Final = 64  # L for ristretto255: 64 bytes, reduced or mapped


class OprfError(ValueError):
    """Base of every OPRF failure."""


class InvalidInputError(OprfError):
    """The private input maps to the identity element (RFC 9497 §3.3.1)."""


class DeserializeError(OprfError):
    """A received element or scalar is not canonical, or is the identity."""


class VerifyError(OprfError):
    """The VOPRF proof does not verify: the evaluation can't be trusted."""


def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def _lp(data: bytes) -> bytes:
    return _i2osp(len(data), 2) + data


def _context(mode: int) -> bytes:
    if mode not in (MODE_OPRF, MODE_VOPRF):
        raise ValueError("only the OPRF and VOPRF modes are implemented")
    return b"OPRFV1-" + _i2osp(mode, 1) + b"-" + SUITE_ID


# --- hashing (RFC 9380 §5.3.1; RFC 9497 §4.1) ------------------------------------


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 expand_message_xmd with SHA-512.

    Raises:
        ValueError: ``dst`` longer than 255 bytes or ``length`` out of range.
    """
    if len(dst) > 255:
        raise ValueError("DST longer than 255 bytes")
    ell = -(-length // _HASH_SIZE)
    if ell > 255 or length > 0xFFFF or length <= 0:
        raise ValueError("expand_message_xmd length out of range")
    dst_prime = dst + _i2osp(len(dst), 1)
    b0 = hashlib.sha512(
        bytes(_HASH_BLOCK) + msg + _i2osp(length, 2) + _i2osp(0, 1) + dst_prime
    ).digest()
    blocks = [hashlib.sha512(b0 + _i2osp(1, 1) + dst_prime).digest()]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b0, blocks[-1], strict=True))
        blocks.append(hashlib.sha512(mixed + _i2osp(i, 1) + dst_prime).digest())
    return b"".join(blocks)[:length]


def hash_to_group(msg: bytes, mode: int) -> bytes:
    """HashToGroup: hash_to_ristretto255 with DST ``"HashToGroup-" || contextString``."""
    uniform = expand_message_xmd(msg, b"HashToGroup-" + _context(mode), _UNIFORM_SIZE)
    return crypto.ristretto_from_uniform(uniform)


def hash_to_scalar(msg: bytes, mode: int, dst: bytes | None = None) -> bytes:
    """HashToScalar: 64 expanded bytes reduced modulo the group order.

    ``dst`` defaults to ``"HashToScalar-" || contextString``.
    """
    if dst is None:
        dst = b"HashToScalar-" + _context(mode)
    return crypto.scalar_from_wide(expand_message_xmd(msg, dst, _UNIFORM_SIZE))


# --- keys ------------------------------------------------------------------------


def derive_key_pair(seed: bytes, info: bytes, mode: int) -> tuple[bytes, bytes]:
    """DeriveKeyPair (RFC 9497 §3.2.1): ``(skS, pkS)`` from a 32-byte seed and ``info``.

    Raises:
        ValueError: ``seed`` is not 32 bytes or ``info`` too long.
        OprfError: no non-zero scalar after 256 counters (never in practice).
    """
    if len(seed) != 32:
        raise ValueError("DeriveKeyPair seeds are 32 bytes")
    if len(info) > MAX_INPUT_SIZE:
        raise ValueError("info is too long")
    derive_input = seed + _lp(info)
    dst = b"DeriveKeyPair" + _context(mode)
    for counter in range(256):
        secret = hash_to_scalar(derive_input + _i2osp(counter, 1), mode, dst)
        if any(secret):
            return secret, crypto.ristretto_mul_base(secret)
    raise OprfError("DeriveKeyPair found no key")


def public_key(secret: bytes) -> bytes:
    """``pkS = skS * G``."""
    return crypto.ristretto_mul_base(secret)


def check_element(element: object) -> bytes:
    """DeserializeElement: ``element`` if it is a canonical non-identity element.

    Raises:
        DeserializeError: anything else.
    """
    if not isinstance(element, bytes) or not crypto.ristretto_is_valid(element):
        raise DeserializeError("not a valid ristretto255 element")
    return element


def _check_scalar(scalar: bytes) -> bytes:
    if not crypto.scalar_is_canonical(scalar):
        raise DeserializeError("not a canonical ristretto255 scalar")
    return scalar


# --- client: blind and finalize --------------------------------------------------------


def blind(
    private_input: bytes,
    mode: int,
    *,
    random_scalar: Callable[[], bytes] = crypto.scalar_random,
) -> tuple[bytes, bytes]:
    """Blind (RFC 9497 §3.3.1): ``(blind, blindedElement)``.

    ``random_scalar`` is injected only by the vector tests.

    Raises:
        InvalidInputError: the input maps to the identity element.
        ValueError: the input is longer than 65535 bytes.
    """
    if len(private_input) > MAX_INPUT_SIZE:
        raise ValueError("OPRF inputs are at most 65535 bytes")
    element = hash_to_group(private_input, mode)
    if not crypto.ristretto_is_valid(element):
        raise InvalidInputError("the input maps to the identity element")
    blind_scalar = random_scalar()
    return blind_scalar, crypto.ristretto_mul(blind_scalar, element)


def finalize(
    private_input: bytes,
    blind_scalar: bytes,
    evaluated_element: bytes,
    mode: int,
    *,
    blinded_element: bytes | None = None,
    server_public_key: bytes | None = None,
    proof: bytes | None = None,
) -> bytes:
    """Finalize (RFC 9497 §3.3.1/§3.3.2): the 64-byte PRF output.

    In VOPRF mode the proof is verified first (against ``server_public_key``,
    which the caller pinned) and nothing is computed when it fails.

    Raises:
        DeserializeError: ``evaluated_element`` is not a valid element.
        VerifyError: VOPRF mode and the proof does not verify.
    """
    check_element(evaluated_element)
    if mode == MODE_VOPRF:
        if blinded_element is None or server_public_key is None or proof is None:
            raise ValueError("VOPRF finalize needs the blinded element, the key and the proof")
        verify_proof(
            crypto.ristretto_mul_base(_one()),
            server_public_key,
            [blinded_element],
            [evaluated_element],
            proof,
            mode,
        )
    return _finalize_unblind(private_input, blind_scalar, evaluated_element)


def _finalize_unblind(private_input: bytes, blind_scalar: bytes, evaluated: bytes) -> bytes:
    unblinded = crypto.ristretto_mul(crypto.scalar_invert(blind_scalar), evaluated)
    return hashlib.sha512(_lp(private_input) + _lp(unblinded) + b"Finalize").digest()


def _one() -> bytes:
    return (1).to_bytes(SCALAR_SIZE, "little")


# --- server: evaluate ------------------------------------------------------------------


def blind_evaluate(secret: bytes, blinded_element: bytes) -> bytes:
    """BlindEvaluate in OPRF mode: ``skS * blindedElement``.

    Raises:
        DeserializeError: ``blinded_element`` is not a valid element.
    """
    return crypto.ristretto_mul(secret, check_element(blinded_element))


def blind_evaluate_voprf(
    secret: bytes,
    server_public_key: bytes,
    blinded_element: bytes,
    *,
    random_scalar: Callable[[], bytes] = crypto.scalar_random,
) -> tuple[bytes, bytes]:
    """BlindEvaluate in VOPRF mode: ``(evaluatedElement, proof)``.

    Raises:
        DeserializeError: ``blinded_element`` is not a valid element.
    """
    evaluated = blind_evaluate(secret, blinded_element)
    proof = generate_proof(
        secret,
        crypto.ristretto_mul_base(_one()),
        server_public_key,
        [blinded_element],
        [evaluated],
        MODE_VOPRF,
        random_scalar=random_scalar,
    )
    return evaluated, proof


def evaluate(secret: bytes, private_input: bytes, mode: int) -> bytes:
    """Evaluate (RFC 9497 §3.3.1): the PRF output computed by the key holder directly.

    Never on a request path: for tooling that holds the key (the fleet's
    privacy audit) and for tests.

    Raises:
        InvalidInputError: the input maps to the identity element.
    """
    element = hash_to_group(private_input, mode)
    if not crypto.ristretto_is_valid(element):
        raise InvalidInputError("the input maps to the identity element")
    issued = crypto.ristretto_mul(secret, element)
    return hashlib.sha512(_lp(private_input) + _lp(issued) + b"Finalize").digest()


# --- the DLEQ proof (RFC 9497 §2.2) ------------------------------------------------------


def _composites(
    secret: bytes | None,
    b: bytes,
    cs: Sequence[bytes],
    ds: Sequence[bytes],
    mode: int,
) -> tuple[bytes, bytes]:
    """ComputeCompositesFast (``secret`` given) or ComputeComposites (``secret`` None)."""
    if not cs or len(cs) != len(ds):
        raise ValueError("the proof covers one or more element pairs")
    seed_dst = b"Seed-" + _context(mode)
    seed = hashlib.sha512(_lp(b) + _lp(seed_dst)).digest()
    m: bytes | None = None
    z: bytes | None = None
    for i, (c, d) in enumerate(zip(cs, ds, strict=True)):
        transcript = _lp(seed) + _i2osp(i, 2) + _lp(c) + _lp(d) + b"Composite"
        di = hash_to_scalar(transcript, mode)
        term_m = crypto.ristretto_mul(di, c)
        m = term_m if m is None else crypto.ristretto_add(m, term_m)
        if secret is None:
            term_z = crypto.ristretto_mul(di, d)
            z = term_z if z is None else crypto.ristretto_add(z, term_z)
    assert m is not None
    if secret is not None:
        z = crypto.ristretto_mul(secret, m)
    assert z is not None
    return m, z


def _challenge(b: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes, mode: int) -> bytes:
    transcript = _lp(b) + _lp(m) + _lp(z) + _lp(t2) + _lp(t3) + b"Challenge"
    return hash_to_scalar(transcript, mode)


def generate_proof(
    secret: bytes,
    a: bytes,
    b: bytes,
    cs: Sequence[bytes],
    ds: Sequence[bytes],
    mode: int,
    *,
    random_scalar: Callable[[], bytes] = crypto.scalar_random,
) -> bytes:
    """GenerateProof: ``c || s`` proving ``log_A(B) == log_C[i](D[i])`` for every ``i``."""
    m, z = _composites(secret, b, cs, ds, mode)
    r = random_scalar()
    t2 = crypto.ristretto_mul(r, a)
    t3 = crypto.ristretto_mul(r, m)
    c = _challenge(b, m, z, t2, t3, mode)
    s = crypto.scalar_sub(r, crypto.scalar_mul(c, secret))
    return c + s


def verify_proof(
    a: bytes,
    b: bytes,
    cs: Sequence[bytes],
    ds: Sequence[bytes],
    proof: bytes,
    mode: int,
) -> None:
    """VerifyProof; returns nothing and raises when the proof is not valid.

    Raises:
        VerifyError: the proof is malformed, has a non-canonical scalar, or
            does not verify (one error for all: the answer can't be trusted).
    """
    try:
        if not isinstance(proof, bytes) or len(proof) != PROOF_SIZE:
            raise VerifyError("a proof is 64 bytes")
        c = _check_scalar(proof[:SCALAR_SIZE])
        s = _check_scalar(proof[SCALAR_SIZE:])
        for element in (a, b, *cs, *ds):
            check_element(element)
        m, z = _composites(None, b, cs, ds, mode)
        t2 = crypto.ristretto_add(crypto.ristretto_mul(s, a), crypto.ristretto_mul(c, b))
        t3 = crypto.ristretto_add(crypto.ristretto_mul(s, m), crypto.ristretto_mul(c, z))
        expected = _challenge(b, m, z, t2, t3, mode)
    except (crypto.GroupError, DeserializeError) as exc:
        raise VerifyError("the OPRF proof does not verify") from exc
    if not crypto.timing_safe_equal(expected, c):
        raise VerifyError("the OPRF proof does not verify")
