"""Fleets in process on moto: hundreds of phones, every adverse condition,
every delivery verified, and a privacy audit that catches a planted leak."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from client_sim.directory import MAX_CARD_CACHE_TTL
from sealbox_tools.fleet.backends import Backend, InProcessBackend
from sealbox_tools.fleet.runner import FleetConfig, FleetResult, run_fleet
from sealbox_tools.local_stack import stage_environment
from sealbox_tools.pytest_plugin.backend import without_pytest_log_capture

STAGE_ENV = stage_environment("test")


def run(
    tmp_path: Path,
    devices: int,
    scenario: str,
    *,
    overrides: dict[str, str] | None = None,
    before_audit: Any = None,
    oprf: bool = True,
    kt: bool = True,
) -> FleetResult:
    config = FleetConfig(
        devices=devices,
        scenario=scenario,
        overrides=overrides or {},
        seed=20240601,
        concurrency=8,
        retry_backoff=0.0,
    )
    with without_pytest_log_capture(), InProcessBackend(oprf=oprf, kt=kt) as backend:
        return run_fleet(config, backend, work_dir=tmp_path / "phones", before_audit=before_audit)


@pytest.mark.slow
def test_two_hundred_phones_through_every_behaviour_and_adverse_condition(tmp_path) -> None:
    result = run(tmp_path, 200, "full")
    report = result.report
    outcome, events = report["outcome"], report["metrics"]["events"]
    assert report["crashes"] == []
    assert outcome["mismatches"] == 0, events
    assert outcome["failed_steps"] == 0, report["metrics"]["errors"]
    assert outcome["undelivered"] == 0, outcome["undelivered_sample"]
    assert outcome["deliveries_verified"] == outcome["deliveries_expected"] > 1000
    assert outcome["sends_completed"] == outcome["sends_planned"]
    # Every behaviour and adverse condition of the plan really happened.
    planned = report["run"]["planned_steps"]
    assert events["signed_up"] == events["backed_up"] == 200
    assert events["new_phone"] == planned["lose_phone"]
    assert events["reinstalled"] == planned["reinstall"]
    assert events["rotated"] == planned["rotate"]
    assert events["password_changed"] == planned["change_password"]
    assert events["shared"] == planned["share"]
    assert events["unregistered"] == planned["unregister"]
    assert events["revocation_seen"] == planned["check_revoked"]
    # How long after a revocation a contact's phone still had the card to
    # encrypt to (from its cache) is measured, and bounded by the cache lifetime.
    served = report["metrics"]["observed"].get("revoked_card_still_served_s", {"count": 0})
    at_once = events.get("revocation_seen_at_once", 0)
    assert served["count"] + at_once == planned["check_revoked"]
    assert served["count"] == 0 or served["max"] <= MAX_CARD_CACHE_TTL
    assert events["history_verified"] > 0  # restored phones read old messages
    assert events["went_offline"] == planned["go_offline"]
    assert events["queued_offline"] == events["flushed"] > 0
    assert events["clock_frozen"] == planned["freeze_clock"]
    # Each phone that slept through its token's lifetime met a refusal and
    # renewed, and nothing failed for it.
    assert events["token_refused"] >= planned["freeze_clock"]
    assert events["retry"] > 0
    assert report["metrics"]["errors"]["no_answer"] > 0
    assert report["run"]["simulated_time_s"] >= 3 * 1200
    # Metrics: the main routes are timed; CPU is split.
    routes = report["metrics"]["routes"]
    for route in ("POST /v1/blobs", "PUT /v1/blobs/{id}/content", "GET object", "PUT object"):
        assert routes[route]["count"] > 0
    assert report["cpu"]["server_s"] > 0
    assert report["cpu"]["crypto_s"] > 0
    # The audit read everything and found nothing.
    audit = report["audit"]
    assert audit["passed"], audit["summary"]
    assert audit["hits"] == []
    assert audit["not_ciphertext"] == []
    assert audit["scanned"]["log"] > 0
    assert audit["scanned"]["dynamodb-item"] > 1000
    assert audit["blobs_checked"] == audit["scanned"]["s3-object"] >= outcome["sends_completed"]
    labels = " ".join(label for label, _ in result.secrets)
    for kind in ("canary", "ed25519 seed", "x25519 secret", "mlkem768x25519 seed", "password"):
        assert kind in labels
    assert "login key" in labels
    assert "backup key" in labels
    assert "device key" in labels
    assert result.passed


# --- the audit catches a planted leak ------------------------------------------------------


def first(secrets: Sequence[tuple[str, bytes]], kind: str) -> tuple[str, bytes]:
    return next((label, s) for label, s in secrets if kind in label)


def leak_into_a_table(backend: Backend, secrets: Sequence[tuple[str, bytes]]) -> str:
    label, canary = first(secrets, "canary of")
    assert isinstance(backend, InProcessBackend)
    backend.client("dynamodb").put_item(
        TableName=STAGE_ENV["SEALBOX_USERS_TABLE"],
        Item={"identity": {"S": "careless-code-path"}, "note": {"S": canary.decode()}},
    )
    return label


def leak_into_the_log(backend: Backend, secrets: Sequence[tuple[str, bytes]]) -> str:
    label, password = first(secrets, "password")
    logging.getLogger("sealbox.api").warning("login for %s", password.decode())
    return label


def leak_into_a_blob(backend: Backend, secrets: Sequence[tuple[str, bytes]]) -> str:
    label, seed = first(secrets, "x25519 secret")
    assert isinstance(backend, InProcessBackend)
    backend.client("s3").put_object(
        Bucket=STAGE_ENV["SEALBOX_BLOBS_BUCKET"], Key="blobs/AAAAAAAAAAAAAAAAAAAAAA", Body=seed
    )
    return label


@pytest.mark.parametrize(
    ("plant", "where"),
    [
        (leak_into_a_table, ("dynamodb-item", STAGE_ENV["SEALBOX_USERS_TABLE"])),
        (leak_into_the_log, ("log", "sealbox.api")),
        (
            leak_into_a_blob,
            (
                "s3-object",
                "s3://sealbox-test-blobs-123456789012-us-east-1/blobs/AAAAAAAAAAAAAAAAAAAAAA",
            ),
        ),
    ],
    ids=["table", "log", "blob"],
)
def test_the_audit_catches_a_planted_leak(tmp_path, plant, where) -> None:
    planted: list[str] = []

    def hook(backend: Backend, secrets: Sequence[tuple[str, bytes]]) -> None:
        planted.append(plant(backend, secrets))

    result = run(tmp_path, 6, "standard", overrides={"rounds": "1"}, before_audit=hook)
    report = result.report
    # The fleet itself was fine; only the leak fails the run.
    assert report["outcome"]["mismatches"] == report["outcome"]["failed_steps"] == 0
    assert not result.passed
    assert report["verdict"]["reasons"] == ["the privacy audit did not pass"]
    assert {"kind": where[0], "where": where[1], "label": planted[0]} in report["audit"]["hits"]
    if plant is leak_into_a_blob:
        # A plaintext key where a blob should be is not an age file either.
        assert report["audit"]["not_ciphertext"] == [where[1]]


def test_without_a_leak_the_same_small_run_passes(tmp_path) -> None:
    result = run(tmp_path, 6, "standard", overrides={"rounds": "1"})
    assert result.passed, result.report["verdict"]


def test_a_fleet_with_password_hardening_passes_the_audit(tmp_path) -> None:
    result = run(tmp_path, 12, "full", overrides={"rounds": "1"}, oprf=True)
    report = result.report
    assert result.passed, report["verdict"]
    assert report["audit"]["hits"] == []
    assert report["metrics"]["routes"]["POST /v1/oprf"]["count"] > 0
    labels = " ".join(label for label, _ in result.secrets)
    # The audit looked for the hardened keys and the OPRF outputs too.
    assert "hardened login key" in labels
    assert "hardened backup key" in labels
    assert "OPRF output" in labels


def test_a_fleet_pinning_both_keys_passes_the_audit(tmp_path) -> None:
    result = run(tmp_path, 8, "standard", overrides={"rounds": "1"}, oprf=True, kt=True)
    report = result.report
    assert result.passed, report["verdict"]
    assert report["audit"]["hits"] == []
    routes = report["metrics"]["routes"]
    assert routes["POST /v1/oprf"]["count"] > 0
    # The devices checked the log: they asked for checkpoints.
    assert routes["GET /v1/kt/checkpoint"]["count"] > 0


def test_the_in_process_backend_pins_the_oprf_roots_by_default() -> None:
    with without_pytest_log_capture(), InProcessBackend() as backend:
        # Both on, as an app ships them.
        assert backend.oprf_roots()
        assert backend.log_key()
    with without_pytest_log_capture(), InProcessBackend(oprf=False, kt=True) as backend:
        assert backend.oprf_roots() is None
        assert backend.log_key()


def test_the_in_process_backend_leaves_the_process_as_it_was(monkeypatch) -> None:
    from moto.dynamodb.models import DynamoDBBackend

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    environment = dict(os.environ)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    app_handlers = list(logging.getLogger("sealbox").handlers)
    transact = DynamoDBBackend.transact_write_items
    with InProcessBackend() as backend:
        # Inside: no endpoint override (moto would stop intercepting) and
        # the app's stdout handler stands aside for the capture.
        assert "AWS_ENDPOINT_URL" not in os.environ
        assert root.level == logging.DEBUG
        assert DynamoDBBackend.transact_write_items is not transact
        assert backend.api().request("GET", "/.well-known/jwks.json").status == 200
    assert dict(os.environ) == environment
    assert (root.level, root.handlers) == (level, handlers)
    assert logging.getLogger("sealbox").handlers == app_handlers
    assert DynamoDBBackend.transact_write_items is transact


def test_a_stage_whose_storage_is_gone_fails_the_run_instead_of_raising(tmp_path) -> None:
    # Over HTTP a mistyped --stage finds no tables: the audit can't run, and
    # that must be a failed verdict with a reason, not a traceback after the
    # fleet has run (nor a pass).
    def drop_the_tables(backend: Backend, secrets: Sequence[tuple[str, bytes]]) -> None:
        assert isinstance(backend, InProcessBackend)
        ddb = backend.client("dynamodb")
        for table in ddb.list_tables()["TableNames"]:
            ddb.delete_table(TableName=table)

    result = run(tmp_path, 4, "standard", overrides={"rounds": "1"}, before_audit=drop_the_tables)
    report = result.report
    assert report["outcome"]["mismatches"] == report["outcome"]["failed_steps"] == 0
    assert not result.passed
    assert report["verdict"]["reasons"] == ["the privacy audit did not pass"]
    assert report["audit"]["passed"] is False
    assert "no DynamoDB table named sealbox-test" in report["audit"]["summary"]


# --- the verdict catches a broken backend ---------------------------------------------------


def test_a_backend_that_forgets_idempotency_keys_fails_the_run(tmp_path, monkeypatch) -> None:
    """A retried upload would become a second blob and readers would get the
    message twice.  The phones catch it at the first reservation: the blob
    id they signed into the file is derived from their idempotency key, and
    a reservation answering another id is refused before anything is sent.
    No copy is stored, every send fails, and so must the run."""
    import secrets

    # Patched where the service looks the name up, not where it is re-exported.
    from chalicelib.services.blobs import _random_blob_id, service

    monkeypatch.setattr(
        service, "_derived_blob_id", lambda owner, key: _random_blob_id(secrets.token_bytes)
    )
    overrides = {
        "rounds": "1",
        "sends_per_round": "6,6",
        "flaky": "1.0",
        "drop_rate": "0.15",
        **{name: "0" for name in ("lose_phone", "reinstall", "rotate", "unregister")},
    }
    config = FleetConfig(
        devices=8,
        scenario="standard",
        overrides=overrides,
        seed=1,
        concurrency=8,
        retry_backoff=0.0,
        audit=False,
    )
    with without_pytest_log_capture(), InProcessBackend() as backend:
        result = run_fleet(config, backend, work_dir=tmp_path / "phones")
    report = result.report
    events = report["metrics"]["events"]
    assert events["failed_steps"] > 0, events
    assert events.get("mismatch_copy", 0) == 0, events  # no second copy reached anyone
    assert not [name for name in events if name.startswith("sent_")], events
    assert not result.passed
    assert any("steps failed" in reason for reason in report["verdict"]["reasons"])


def test_a_blob_deleted_while_a_restored_phone_reads_its_history_is_not_a_failure(
    tmp_path, monkeypatch
) -> None:
    # A restoring phone reads its history in the same phase as shares, which
    # re-seal a file and delete the old blob: a blob listed a moment ago can
    # answer 404.  That is the owner's deletion, not a failed step.  Every
    # replacement phone's first listing (its history read) names one blob
    # that no longer exists.
    import dataclasses

    from client_sim.api import BlobPage
    from client_sim.device import Device

    listed = Device.list_blobs
    homes: set[object] = set()

    def list_blobs(self: Device, role: str = "inbox", **kwargs: Any) -> BlobPage:
        page = listed(self, role, **kwargs)
        home = self._home  # type: ignore[attr-defined]
        if role != "inbox" or not str(home).endswith("-phone-1") or home in homes:
            return page
        if not page.items:
            return page
        homes.add(home)
        gone = dataclasses.replace(page.items[0], blob_id="AAAAAAAAAAAAAAAAAAAAAA")
        return BlobPage(items=(gone, *page.items), next_cursor=page.next_cursor)

    monkeypatch.setattr(Device, "list_blobs", list_blobs)
    result = run(tmp_path, 6, "standard", overrides={"rounds": "2", "lose_phone": "0.5"})
    events = result.report["metrics"]["events"]
    assert homes, "no phone was lost: the test proves nothing"
    assert events.get("history_gone") == len(homes)
    assert result.passed, result.report["verdict"]


def test_a_run_without_the_audit_says_so(tmp_path) -> None:
    # --no-audit is allowed (a deployed stage the operator won't scan), but
    # its summary must not read like an audited pass.
    from sealbox_tools.fleet.report import summary_text

    config = FleetConfig(
        devices=3, scenario="standard", overrides={"rounds": "1"}, seed=5, audit=False
    )
    with without_pytest_log_capture(), InProcessBackend() as backend:
        result = run_fleet(config, backend, work_dir=tmp_path / "phones")
    assert result.passed
    assert result.report["audit"]["skipped"] is True
    assert "privacy audit: skipped" in summary_text(result.report)


def test_the_in_process_backend_keeps_no_bodies_of_presigned_transfers() -> None:
    """moto's ``responses`` mock kept every intercepted call, body and all,
    in its own list and in the matching registered response's: inside the
    in-process backend nothing is recorded (memory per phone, issue 16)."""
    from moto.core.models import responses_mock

    with without_pytest_log_capture(), InProcessBackend() as backend:
        bucket = stage_environment(backend.stage)["SEALBOX_BLOBS_BUCKET"]
        s3 = backend.client("s3")
        s3.put_object(Bucket=bucket, Key="tidy-probe", Body=b"x" * 100_000)
        url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "tidy-probe"}, ExpiresIn=60
        )
        with backend.objects().get(url) as response:
            assert response.status == 200
            assert response.read() == b"x" * 100_000

        def kept() -> int:
            return len(responses_mock.calls) + sum(
                len(r.calls) for r in responses_mock.registered()
            )

        assert kept() == 0
        backend.tidy()
        assert kept() == 0


def test_a_fleet_and_its_audit_leave_no_copies_in_moto(tmp_path) -> None:
    """A whole run, audit included, leaves no model object moto made for its
    dashboard (every item copy a query or scan returned, every version copy
    of the audit's bucket listing, value included), no recorded transfer
    and no upload's encryption buffer (memory per phone, issue 16)."""
    import gc

    from moto.core.models import responses_mock

    from client_sim.blob_stream import EncryptingReader
    from tests.functional.test_fleet_moto import tracked_models

    config = FleetConfig(devices=6, overrides={"rounds": "1"}, seed=20240601, retry_backoff=0.0)
    with without_pytest_log_capture(), InProcessBackend() as backend:
        result = run_fleet(config, backend, work_dir=tmp_path / "phones")
        gc.collect()
        # Read while moto's mock is still on (stopping it forgets everything).
        models, calls = tracked_models(), len(responses_mock.calls)
        readers = sum(isinstance(o, EncryptingReader) for o in gc.get_objects())
    assert result.passed, result.report["verdict"]
    assert result.report["metrics"]["events"]["sent_file"] > 0  # uploads happened
    assert (models, calls, readers) == (0, 0, 0)
