"""Cross-implementation check: chalicelib.wire.oprf against Cloudflare's voprf-ts.

Both directions of the VOPRF (ristretto255-SHA512): their client with our
server, our client with their server; keys derived the same way; and each
side refusing the other's evaluation under a key it did not pin.
"""

from __future__ import annotations

import subprocess

import pytest

from chalicelib.wire import oprf
from tests.conftest import require_oracle
from tests.oracles import harness

SEED = bytes(range(32))
INFO = b"sealbox/v1/oprf cross-check"
INPUTS = [b"", b"correct horse battery staple", bytes(range(256)) * 4]


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    require_oracle(harness.voprf_available(), "npm @cloudflare/voprf-ts@1.0.0 and node")
    return oprf.derive_key_pair(SEED, INFO, oprf.MODE_VOPRF)


def test_derive_key_pair_agrees(keys: tuple[bytes, bytes]) -> None:
    assert harness.voprf("keypair", SEED.hex(), INFO.hex()) == list(keys)


@pytest.mark.parametrize("private_input", INPUTS, ids=["empty", "ascii", "1KiB"])
def test_their_client_our_server(keys: tuple[bytes, bytes], private_input: bytes) -> None:
    secret, public = keys
    blinded, state = harness.voprf("blind", public.hex(), private_input.hex())
    evaluated, proof = oprf.blind_evaluate_voprf(secret, public, blinded)
    [output] = harness.voprf("finalize", public.hex(), state.hex(), evaluated.hex(), proof.hex())
    # Our client, on its own blind of the same input, gets the same PRF value.
    blind, mine = oprf.blind(private_input, oprf.MODE_VOPRF)
    evaluated_mine, proof_mine = oprf.blind_evaluate_voprf(secret, public, mine)
    assert output == oprf.finalize(
        private_input,
        blind,
        evaluated_mine,
        oprf.MODE_VOPRF,
        blinded_element=mine,
        server_public_key=public,
        proof=proof_mine,
    )


@pytest.mark.parametrize("private_input", INPUTS, ids=["empty", "ascii", "1KiB"])
def test_our_client_their_server(keys: tuple[bytes, bytes], private_input: bytes) -> None:
    secret, public = keys
    blind, blinded = oprf.blind(private_input, oprf.MODE_VOPRF)
    evaluated, proof = harness.voprf("evaluate", secret.hex(), blinded.hex())
    output = oprf.finalize(
        private_input,
        blind,
        evaluated,
        oprf.MODE_VOPRF,
        blinded_element=blinded,
        server_public_key=public,
        proof=proof,
    )
    assert len(output) == oprf.OUTPUT_SIZE


def test_each_side_refuses_an_evaluation_under_another_key(keys: tuple[bytes, bytes]) -> None:
    _, public = keys
    other_secret, _ = oprf.derive_key_pair(SEED, b"another key", oprf.MODE_VOPRF)
    # Their server with another key: our client, pinned to `public`, refuses.
    blind, blinded = oprf.blind(b"input", oprf.MODE_VOPRF)
    evaluated, proof = harness.voprf("evaluate", other_secret.hex(), blinded.hex())
    with pytest.raises(oprf.VerifyError):
        oprf.finalize(
            b"input",
            blind,
            evaluated,
            oprf.MODE_VOPRF,
            blinded_element=blinded,
            server_public_key=public,
            proof=proof,
        )
    # Our server with another key: their client, pinned to `public`, refuses.
    theirs, state = harness.voprf("blind", public.hex(), b"input".hex())
    other_public = oprf.public_key(other_secret)
    evaluated, proof = oprf.blind_evaluate_voprf(other_secret, other_public, theirs)
    with pytest.raises(subprocess.CalledProcessError):
        harness.voprf("finalize", public.hex(), state.hex(), evaluated.hex(), proof.hex())
