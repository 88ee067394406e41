"""``sealbox local`` over real HTTP: the contract, the AWS state, the shutdown."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from client_sim.api import ApiClient
from client_sim.errors import ServerError
from client_sim.passwords import PASSWORD_KDF_SIMULATION, derive_password_keys
from client_sim.transport import HttpTransport
from sealbox_tools.demo import verify_access_token
from sealbox_tools.local_stack import CHALICE_LISTEN_BACKLOG, free_port, stage_environment
from tests.conftest import require_oracle
from tests.e2e.conftest import RunningStack, port_of, start_local, stop_local


def refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_prints_both_endpoints_on_loopback(local_stack: RunningStack) -> None:
    assert local_stack.url.startswith("http://127.0.0.1:")
    assert local_stack.aws_endpoint.startswith("http://127.0.0.1:")
    assert local_stack.lines[0].startswith("aws endpoint ")


def test_the_api_listens_with_a_deep_backlog(local_stack: RunningStack) -> None:
    # socketserver's default backlog of 5 made a 50-phone fleet's clients wait
    # out 1 s SYN retransmits; for a listening socket, ss shows the backlog as
    # Send-Q.
    ss = shutil.which("ss")
    require_oracle(ss is not None, "ss (iproute2) reads a listening socket's backlog")
    assert ss is not None
    port = port_of(local_stack.url)
    out = subprocess.run(
        [ss, "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "LISTEN", out
    assert int(out[2]) >= CHALICE_LISTEN_BACKLOG >= 128


def test_full_account_flow_over_http(local_stack: RunningStack) -> None:
    api = ApiClient(HttpTransport(local_stack.url))
    keys = derive_password_keys("e2e-alice", "a long enough password", PASSWORD_KDF_SIMULATION)
    assert api.register("E2E-Alice", keys.login_key_b64) == "e2e-alice"
    with pytest.raises(ServerError) as taken:
        api.register("e2e-alice", keys.login_key_b64)
    assert taken.value.code == "username_taken"
    session = api.login("e2e-alice", keys.login_key_b64)
    access = api.access_token(session.refresh_token)
    audience = stage_environment("local")["SEALBOX_TOKEN_AUDIENCE"]
    claims = verify_access_token(access.access_token, api.jwks(), audience=audience)
    assert claims["sub"] == "e2e-alice"
    assert api.me(access.access_token)["identity"] == "e2e-alice"
    # The refresh token rotated: the login's is spent, the new one logs out.
    api.logout(access.refresh_token)
    with pytest.raises(ServerError) as revoked:
        api.access_token(access.refresh_token)
    assert revoked.value.status == 401


def test_state_is_inspectable_through_the_printed_aws_endpoint(local_stack: RunningStack) -> None:
    api = ApiClient(HttpTransport(local_stack.url))
    keys = derive_password_keys("e2e-bob", "a long enough password", PASSWORD_KDF_SIMULATION)
    api.register("e2e-bob", keys.login_key_b64)
    table = stage_environment("local")["SEALBOX_USERS_TABLE"]
    item = local_stack.client("dynamodb").get_item(
        TableName=table, Key={"identity": {"S": "e2e-bob"}}
    )["Item"]
    assert item["login_hash"]["S"].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert keys.login_key_b64 not in repr(item)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_every_process_on_signal(sig: int) -> None:
    stack = start_local(free_port())
    api_port, moto_port = port_of(stack.url), port_of(stack.aws_endpoint)
    assert not refused(api_port)
    assert not refused(moto_port)
    assert stop_local(stack, sig) == 0
    assert refused(api_port)
    assert refused(moto_port)


def test_moto_applies_concurrent_dynamodb_writes_atomically(local_stack: RunningStack) -> None:
    """DynamoDB applies each item write atomically; moto's threaded server
    did not, and lost ADDs to one item under concurrency (a quota count off
    by a blob in the blob hammer).  The local stack serializes DynamoDB
    requests (sealbox_tools.moto_server): every concurrent ADD counts."""
    dynamodb = local_stack.client("dynamodb")
    table = stage_environment("local")["SEALBOX_BLOB_USAGE_TABLE"]
    key = {"identity": {"S": "atomicity-probe"}}
    threads, rounds = 16, 100

    def add(_: int) -> None:
        client = local_stack.client("dynamodb")
        for _ in range(rounds):
            client.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="ADD #bytes :one",
                ExpressionAttributeNames={"#bytes": "bytes"},
                ExpressionAttributeValues={":one": {"N": "1"}},
            )

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(add, range(threads)))
    item = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert int(item["bytes"]["N"]) == threads * rounds


def test_unknown_routes_and_methods_answer_in_the_error_shape(local_stack: RunningStack) -> None:
    """chalice local answered 403 {"message": "Missing Authentication Token"}
    for a path no route has; `sealbox local` answers like the deployed API."""
    transport = HttpTransport(local_stack.url)
    for path in ("/", "/v2/users", "/v1/nothing/here"):
        reply = transport.request("GET", path)
        assert reply.status == 404, (path, reply.body)
        assert reply.json()["error"]["code"] == "not_found"
        assert reply.headers["content-type"] == "application/json"
    for method in ("GET", "OPTIONS", "DELETE"):
        reply = transport.request(method, "/v1/users")
        assert reply.status == 405, (method, reply.body)
        assert reply.json()["error"]["code"] == "method_not_allowed"
        assert reply.headers["allow"] == "POST"
    body = '{"username": "e2e-carol", "login_key": "x"}'.encode("utf-16")
    reply = transport.request("POST", "/v1/users", body=body)
    assert reply.status == 400
    assert reply.json()["error"]["code"] == "invalid_encoding"


def test_prints_the_transparency_log_key_devices_pin(local_stack: RunningStack) -> None:
    from chalicelib.wire.note import parse_verifier_key
    from sealbox_tools.local_stack import stage_environment

    deadline = time.monotonic() + 10
    while not any(line.startswith("transparency log key ") for line in local_stack.lines):
        assert time.monotonic() < deadline, local_stack.lines
        time.sleep(0.1)
    line = next(line for line in local_stack.lines if line.startswith("transparency log key "))
    verifier = parse_verifier_key(line.removeprefix("transparency log key "))
    assert verifier.name == stage_environment("local")["SEALBOX_KT_ORIGIN"]
