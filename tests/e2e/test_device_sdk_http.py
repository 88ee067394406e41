"""The device SDK and ``sealbox device`` over real HTTP against ``sealbox local``.

The same scenarios as tests/functional/test_device_sdk.py, through
HttpTransport, chalice local and a moto server; then the server side is
inspected through the printed AWS endpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from client_sim.device import Device
from client_sim.passwords import PASSWORD_KDF_SIMULATION
from sealbox_tools.local_stack import stage_environment
from tests.e2e.conftest import RunningStack
from tests.support import device_flows
from tests.support.device_flows import PASSWORD, MakeDevice

SEALBOX = str(Path(sys.executable).with_name("sealbox"))


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def make(local_stack: RunningStack, tmp_path: Path) -> MakeDevice:
    def make_device(name: str) -> Device:
        return Device.connect(
            tmp_path / name,
            local_stack.url,
            kdf=PASSWORD_KDF_SIMULATION,
            sleep=lambda _: None,
            storage_origins=[local_stack.aws_endpoint],
        )

    return make_device


def test_two_users_exchange_files(make: MakeDevice, tag: str, tmp_path: Path) -> None:
    device_flows.two_users_exchange_files(make, tag, tmp_path)


def test_files_through_blob_storage(make: MakeDevice, tag: str, tmp_path: Path) -> None:
    device_flows.files_through_blob_storage(make, tag, tmp_path)


def test_new_phone_restores_from_backup(make: MakeDevice, tag: str) -> None:
    device_flows.new_phone_restores_from_backup(make, tag)


def test_rotation_keeps_old_data_readable(make: MakeDevice, tag: str) -> None:
    device_flows.rotation_keeps_old_data_readable(make, tag)


def test_password_change_then_new_phone(make: MakeDevice, tag: str) -> None:
    device_flows.password_change_then_new_phone(make, tag)


def test_unregister_revokes_but_keeps_the_backup(make: MakeDevice, tag: str) -> None:
    device_flows.unregister_revokes_but_keeps_the_backup(make, tag)


def test_the_directory_holds_public_cards_and_sealed_backups_only(
    local_stack: RunningStack, make: MakeDevice, tag: str
) -> None:
    phone = make("phone")
    phone.register(f"alice-{tag}", PASSWORD)
    phone.backup_private_key()
    bundle = phone._store.keystore.load().current
    assert bundle is not None
    env = stage_environment("local")
    ddb = local_stack.client("dynamodb")
    stored = repr(ddb.scan(TableName=env["SEALBOX_CARDS_TABLE"])["Items"])
    stored += repr(ddb.scan(TableName=env["SEALBOX_BACKUPS_TABLE"])["Items"])
    assert bundle.card.card_id in stored
    for secret in (bundle._ed25519_seed, bundle._x25519_secret, bundle._pq_seed):
        assert secret.hex() not in stored
        assert repr(secret)[2:-1] not in stored


def test_cli_over_http(local_stack: RunningStack, tmp_path: Path, tag: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    env.update({"SEALBOX_URL": local_stack.url, "SEALBOX_PASSWORD": PASSWORD})

    def device(home: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [SEALBOX, "device", "--home", str(tmp_path / home), "--kdf", "simulation", *args]
        return subprocess.run(
            argv, env=env, capture_output=True, text=True, check=check, timeout=120
        )

    alice, bob = f"alice-{tag}", f"bob-{tag}"
    device("alice", "register", alice)
    device("bob", "register", bob)
    (tmp_path / "note.txt").write_text("over http\n")
    device("alice", "encrypt", "--to", bob, str(tmp_path / "note.txt"), str(tmp_path / "note.age"))
    out = device("bob", "decrypt", str(tmp_path / "note.age"), str(tmp_path / "note.out"))
    assert out.stdout.splitlines()[0] == f"verified sender: {alice}"
    assert out.stdout.splitlines()[2] == f"readers: {alice}, {bob}"
    assert (tmp_path / "note.out").read_text() == "over http\n"

    refused = device(
        "bob",
        "decrypt",
        "--from",
        bob,
        str(tmp_path / "note.age"),
        str(tmp_path / "x"),
        check=False,
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith("sealbox: error: signed by")
    assert not (tmp_path / "x").exists()
    down = subprocess.run(
        [
            SEALBOX,
            "device",
            "--home",
            str(tmp_path / "bob"),
            "--url",
            "http://127.0.0.1:9",
            "find",
            alice,
            "--refresh",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (down.returncode, down.stderr) == (1, "sealbox: error: the server did not answer\n")


def test_cli_blob_verbs_over_http(local_stack: RunningStack, tmp_path: Path, tag: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    env.update({"SEALBOX_URL": local_stack.url, "SEALBOX_PASSWORD": PASSWORD})
    # moto's S3 presigns on the stack's aws endpoint: the devices' storage origin.
    env["SEALBOX_STORAGE_ORIGINS"] = local_stack.aws_endpoint

    def device(
        home: str, *args: str, check: bool = True, pinned: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [SEALBOX, "device", "--home", str(tmp_path / home), "--kdf", "simulation", *args]
        return subprocess.run(
            argv,
            env=env if pinned else {k: v for k, v in env.items() if "STORAGE" not in k},
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    alice, bob, carol = f"alice-{tag}", f"bob-{tag}", f"carol-{tag}"
    for home, name in (("alice", alice), ("bob", bob), ("carol", carol)):
        device(home, "register", name)
    (tmp_path / "plan.txt").write_text("the plan\n")
    blob = device("alice", "put", "--to", bob, str(tmp_path / "plan.txt")).stdout.strip()
    (line,) = device("alice", "ls", "--role", "outbox").stdout.splitlines()
    blob_id, owner, size, state, readers = line.split("\t")
    assert (blob_id, owner, state, readers) == (blob, alice, "ready", bob)
    assert int(size) > len("the plan\n")  # the stored size is the ciphertext's
    # Without the storage origin the presigned GET is refused before connecting.
    unpinned = device("bob", "get", blob, str(tmp_path / "bob.txt"), check=False, pinned=False)
    assert unpinned.returncode == 1
    assert unpinned.stderr == (
        f"sealbox: error: refused a transfer to {local_stack.aws_endpoint}: "
        "not a configured storage origin\n"
    )
    assert not (tmp_path / "bob.txt").exists()
    got = device("bob", "get", "--from", alice, blob, str(tmp_path / "bob.txt"))
    assert got.stdout.splitlines()[0] == f"verified sender: {alice}"
    assert got.stdout.splitlines()[2] == f"readers: {alice}, {bob}"
    assert (tmp_path / "bob.txt").read_text() == "the plan\n"

    # Carol sees nothing until Alice shares; adding her re-seals to a new blob.
    refused = device("carol", "get", blob, str(tmp_path / "carol.txt"), check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("sealbox: error: ")
    assert not (tmp_path / "carol.txt").exists()
    shared = device("alice", "share", "--to", bob, "--to", carol, blob).stdout.strip()
    assert shared != blob
    device("carol", "get", shared, str(tmp_path / "carol.txt"))
    assert (tmp_path / "carol.txt").read_text() == "the plan\n"
    assert device("carol", "ls").stdout.split("\t")[0] == shared

    device("alice", "rm", shared)
    assert device("alice", "ls", "--role", "outbox").stdout == ""
    gone = device("bob", "get", shared, str(tmp_path / "gone.txt"), check=False)
    assert gone.returncode == 1
