"""Groups over real HTTP against ``sealbox local``: the ``sealbox device group``
verbs (create, show, add, remove, encrypt, decrypt, ls, leave) as
subprocesses, and group blobs (upload, download) through the SDK, with a
removed member refused both the new epoch's content and the group's blobs."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from client_sim.device import Device
from client_sim.errors import DecryptionFailed, NotAMember, ServerError
from client_sim.passwords import PASSWORD_KDF_SIMULATION
from tests.e2e.conftest import RunningStack
from tests.e2e.test_device_sdk_http import SEALBOX
from tests.support.device_flows import PASSWORD


def test_group_verbs_and_group_blobs_over_http(local_stack: RunningStack, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    alice, bob, carol = (f"{name}-{tag}" for name in ("alice", "bob", "carol"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    env.update({"SEALBOX_URL": local_stack.url, "SEALBOX_PASSWORD": PASSWORD})
    env["SEALBOX_STORAGE_ORIGINS"] = local_stack.aws_endpoint

    def device(home: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [SEALBOX, "device", "--home", str(tmp_path / home), "--kdf", "simulation", *args]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    for name, home in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        device(home, "register", name)
    group_id = device("alice", "group", "create", "--member", bob).stdout.strip()
    assert f"members: {alice} {bob}" in device("bob", "group", "show", group_id).stdout
    note, sealed = tmp_path / "note.txt", tmp_path / "note.age"
    note.write_bytes(b"minutes of the meeting")
    device("alice", "group", "encrypt", group_id, str(note), str(sealed))
    out = device("bob", "group", "decrypt", group_id, str(sealed), str(tmp_path / "n.txt"))
    assert f"verified sender: {alice}" in out.stdout
    assert (tmp_path / "n.txt").read_bytes() == b"minutes of the meeting"
    added = device("alice", "group", "add", group_id, carol).stdout
    assert f"members: {alice} {bob} {carol}" in added
    assert device("carol", "group", "ls").stdout.startswith(group_id)

    # Group blobs through the SDK over HTTP (the devices' homes are the CLI's).
    def sdk(home: str) -> Device:
        return Device.connect(
            tmp_path / home,
            local_stack.url,
            kdf=PASSWORD_KDF_SIMULATION,
            sleep=lambda _: None,
            storage_origins=[local_stack.aws_endpoint],
        )

    big = os.urandom(150_000)  # above the inline limit: presigned S3
    before = sdk("alice").group(group_id).upload(big)
    opened = sdk("carol").group(group_id).download(before.blob_id)
    assert opened.plaintext == big
    assert opened.sender.identity == alice

    removed = device("alice", "group", "remove", group_id, bob).stdout
    assert f"members: {alice} {carol}" in removed
    device("alice", "group", "encrypt", group_id, str(note), str(sealed))
    after = sdk("carol").group(group_id).upload(b"after bob left")
    assert sdk("alice").group(group_id).download(after.blob_id).plaintext == b"after bob left"

    # Bob, removed: the new epoch's content and every group blob are refused.
    x = str(tmp_path / "x")
    refused = device("bob", "group", "decrypt", group_id, str(sealed), x, check=False)
    assert refused.returncode == 1
    assert not (tmp_path / "x").exists()
    bob_phone = sdk("bob")
    for blob_id in (before.blob_id, after.blob_id):
        with pytest.raises(ServerError) as gone:
            bob_phone.group(group_id).download(blob_id)
        assert gone.value.status == 404
    with pytest.raises((NotAMember, DecryptionFailed)):
        bob_phone.group(group_id).decrypt(sealed.read_bytes())

    device("carol", "group", "leave", group_id)
    assert f"members: {alice}\n" in device("alice", "group", "show", group_id).stdout
    assert device("carol", "group", "show", group_id, check=False).returncode == 1
