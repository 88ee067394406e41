"""Group content against independent age implementations, given the exported epoch identity.

Group content is a sealed age file with one recipient, the epoch's age key
(docs/spec/groups.md).  Whoever holds the exported epoch identity decrypts it
with any age: the age CLI and rage (pyrage) for an X25519 epoch, typage for a
post-quantum one.  What they print is the sealed inner stream, whose header
names the epoch and the group, and whose body is the plaintext.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from chalicelib.wire.group_wraps import group_context
from chalicelib.wire.groups import KIND_MLKEM768X25519, KIND_X25519
from client_sim.group_chain import GroupChain, seal_for_epoch
from tests.conftest import require_oracle
from tests.identities import bundle
from tests.oracles import harness
from tests.support.groups import GROUP_ID, make_epoch

ALICE, BOB = bundle("alice"), bundle("bob")
TEXT = b"group minutes, for everyone in the group " * 50


def _group_content(kind: int) -> tuple[bytes, str]:
    made = make_epoch(ALICE, [ALICE, BOB], admins=["alice"], kind=kind)
    chain = GroupChain(head=made.epoch, roster=made.roster)
    chain.secrets[0] = made.secret
    chain.key_ids[0] = made.epoch.key_id
    chain.readers[0] = frozenset(m.card_id for m in made.roster)
    out = io.BytesIO()
    seal_for_epoch(io.BytesIO(TEXT), out, sender=ALICE, chain=chain)
    return out.getvalue(), made.secret.export_identity()


def _check_inner(inner: bytes) -> None:
    assert inner.startswith(b"SBSEALED\x02")
    assert group_context(GROUP_ID, 0) in inner
    assert TEXT in inner


def test_age_cli_decrypts_an_x25519_epoch(tmp_path: Path) -> None:
    require_oracle(harness.age_cli_available(), "age CLI (apt-get install age)")
    data, identity = _group_content(KIND_X25519)
    key = tmp_path / "epoch.key"
    key.write_text(identity + "\n")
    key.chmod(0o600)
    inner = subprocess.run(
        [harness.AGE_CLI, "-d", "-i", str(key)], input=data, check=True, capture_output=True,
        timeout=60,
    ).stdout  # fmt: skip
    _check_inner(inner)


def test_rage_decrypts_an_x25519_epoch() -> None:
    require_oracle(harness.pyrage_available(), "pyrage (pip install pyrage)")
    import pyrage

    data, identity = _group_content(KIND_X25519)
    _check_inner(pyrage.decrypt(data, [pyrage.x25519.Identity.from_str(identity)]))


@pytest.mark.parametrize("kind", [KIND_X25519, KIND_MLKEM768X25519])
def test_typage_decrypts_the_epoch_content(kind: int) -> None:
    require_oracle(harness.typage_available(), "npm age-encryption@0.3.1 and node")
    data, identity = _group_content(kind)
    _check_inner(harness.typage("decrypt", identity, stdin=data))


def test_another_epochs_identity_does_not_decrypt(tmp_path: Path) -> None:
    require_oracle(harness.age_cli_available(), "age CLI (apt-get install age)")
    data, _ = _group_content(KIND_X25519)
    _, other = _group_content(KIND_X25519)
    key = tmp_path / "other.key"
    key.write_text(other + "\n")
    key.chmod(0o600)
    result = subprocess.run(
        [harness.AGE_CLI, "-d", "-i", str(key)], input=data, capture_output=True, timeout=60
    )
    assert result.returncode != 0
    assert TEXT not in result.stdout
