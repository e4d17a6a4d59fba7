"""Authentication, room authorisation, client events, ZeroMQ exposure and CORS, on real
processes (issue: security). Each attack or bad input has its own case."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import socketio
import zmq
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.clients import RecordingClient
from tests.integration.helpers import attributes, send
from tests.processes import PYTHON, ROOT, Processes, Stack, healthz, wait_until
from tests.tokens import TEST_SECRET, hs256_by_hand, token


async def refused(url: str, auth: Any, **kwargs: Any) -> str:
    """Connect and expect a refusal; return the reason the server gave."""
    client = socketio.AsyncClient(reconnection=False)
    reasons: list[Any] = []
    for namespace in kwargs.get("namespaces", ["/"]):
        client.on("connect_error", handler=reasons.append, namespace=namespace)
    with pytest.raises(socketio.exceptions.ConnectionError) as caught:
        await client.connect(url, auth=auth, wait_timeout=10, **kwargs)
    await client.disconnect()
    return f"{caught.value} {reasons}"


@pytest.mark.parametrize(
    ("case", "auth", "reason"),
    [
        ("no auth payload", None, "authentication required"),
        ("no token", {"since": {}}, "authentication required"),
        ("not a JWT", {"token": "not-a-jwt"}, "invalid token"),
        ("expired", {"token": token(exp=int(time.time()) - 3600)}, "token expired"),
        ("wrong secret", {"token": token(secret="x" * 40)}, "signature does not verify"),
        ("no exp claim", {"token": token(exp=None)}, "no 'exp' claim"),
        ("no sub claim", {"token": token(sub=None)}, "no 'sub' claim"),
        ("wrong audience", {"token": token(aud="someone-else")}, "audience"),
        ("no audience", {"token": token(aud=None)}, "no 'aud' claim"),
        ("rooms claim not a list", {"token": token(rooms="shop")}, "must be a list of strings"),
        ("namespaces not a list", {"token": token(namespaces="/")}, "must be a list of strings"),
    ],
)
async def test_a_bad_or_missing_token_is_refused_with_a_reason(
    processes: Processes, stack: Stack, case: str, auth: Any, reason: str
) -> None:
    processes.server(stack)
    assert reason in await refused(stack.base_url, auth), case
    # and a good token still gets in
    client = await RecordingClient().connect(stack.base_url, auth={"token": token()})
    await client.close()


async def test_a_token_opens_only_the_namespaces_it_lists(
    processes: Processes, stack: Stack
) -> None:
    processes.relay(stack)
    # Given a shop token with no namespaces claim, and an admin token
    shop = token(["shop"], namespaces=None)
    admin = token([], namespaces=["/admin"])

    # Then the shop token is refused on /admin, with a reason, and opens '/'
    reason = await refused(stack.base_url, {"token": shop}, namespaces=["/admin"])
    assert "not allowed to connect to namespace '/admin'" in reason
    main = await RecordingClient().connect(stack.base_url, auth={"token": shop})
    # And the admin token opens /admin (only) and gets its room-less events
    assert "namespace '/'" in await refused(stack.base_url, {"token": admin})
    admins = await RecordingClient().connect(
        stack.base_url, auth={"token": admin}, namespaces=["/admin"]
    )
    send(stack.sqs_client(), stack.queue_url, [{"event": "e", "data": 1, "namespace": "/admin"}])
    await admins.wait_for(1)
    await stack.wait_counter("emitted", 1)
    await main.call("join", "shop")  # barrier
    assert main.events == []
    for client in (main, admins):
        await client.close()


async def test_an_apps_own_token_signed_with_the_same_secret_is_refused(
    processes: Processes, stack: Stack
) -> None:
    import jwt

    processes.server(stack)
    # an app's session token: the same secret, sub and exp, but not meant for the relay
    session = jwt.encode({"sub": "user-1", "exp": int(time.time()) + 600}, TEST_SECRET, "HS256")
    assert "no 'aud' claim" in await refused(stack.base_url, {"token": session})
    assert "audience" in await refused(stack.base_url, {"token": token(aud="my-app")})


async def test_an_es256_public_key_file_verifies_its_tokens_and_refuses_other_keys_and_hs256(
    processes: Processes, stack: Stack, tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "public.pem").write_bytes(pem)
    processes.server(
        stack, JWT_SECRET="", JWT_PUBLIC_KEY=str(tmp_path / "public.pem"), DEMO="false"
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    import jwt

    claims = {"sub": "u", "aud": "push-relay", "exp": int(time.time()) + 60, "rooms": ["*"]}
    good = jwt.encode(claims, private, algorithm="ES256")
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(stack.base_url, auth={"token": good}, wait_timeout=10)
    await client.disconnect()
    # a token signed with another key is refused
    stranger = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    assert "signature does not verify" in await refused(stack.base_url, {"token": stranger})
    # the classic algorithm-confusion forgery: HS256 "signed" with the public key itself
    forged = hs256_by_hand(claims, pem)
    assert "algorithm" in await refused(stack.base_url, {"token": forged})


async def test_rooms_are_limited_to_the_tokens_patterns(processes: Processes, stack: Stack) -> None:
    processes.relay(stack)
    client = await RecordingClient().connect(stack.base_url, rooms=["orders:*", "shop"])
    assert (await client.call("join", "orders:42"))["ok"] is True
    assert (await client.call("join", "shop"))["ok"] is True
    for room in ("admin", "shop2", "orders", "relay:all"):
        answer = await client.call("join", room)
        assert answer["ok"] is False, room
    # a message for a room it could not join does not reach it
    sqs = stack.sqs_client()
    send(
        sqs,
        stack.queue_url,
        [
            {"event": "e", "data": 1, "room": "admin"},
            {"event": "e", "data": 2, "room": "orders:42"},
        ],
    )
    await stack.wait_counter("emitted", 2)
    await client.call("join", "shop")  # barrier
    assert [p["data"] for _e, p in client.events] == [2]
    await client.close()


async def test_auth_none_lets_everyone_in_and_says_so(processes: Processes, stack: Stack) -> None:
    server = processes.server(stack, AUTH="none")
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(stack.base_url, wait_timeout=10)
    assert (await client.call("join", "anything"))["ok"] is True
    await client.disconnect()
    assert "AUTH=none: every client may connect" in server.log()


async def test_client_events_are_allow_listed_bounded_rate_limited_and_skip_the_sender(
    processes: Processes, stack: Stack
) -> None:
    processes.server(stack, CLIENT_EVENT_BURST="5", CLIENT_EVENT_RATE="0.5")
    sender = await RecordingClient().connect(stack.base_url)
    same_room = await RecordingClient().connect(stack.base_url)
    other_room = await RecordingClient().connect(stack.base_url)
    for client, room in ((sender, "shop"), (same_room, "shop"), (other_room, "elsewhere")):
        assert (await client.call("join", room))["ok"]

    # an allowed event goes to the sender's rooms, not back to the sender, not elsewhere
    assert await sender.call("item_removed", {"id": 7}) == {"ok": True, "relayed_to": ["shop"]}
    await same_room.wait_for(1)
    assert same_room.events == [
        ("item_removed", {"data": {"id": 7}, "from": sender.sio.get_sid("/")})
    ]

    # anything else is answered with an error and relayed nowhere
    answers = [
        await sender.call("item_added", {"id": 1}),  # not on the allow-list
        await sender.call("relay:recovery", {}),  # the relay's own event
        await sender.call("item_removed", "x" * 20_000),  # over CLIENT_EVENT_MAX_BYTES
    ]
    assert [a["ok"] for a in answers] == [False, False, False]
    assert "not allowed" in answers[0]["error"] and "not allowed" in answers[1]["error"]
    assert "over CLIENT_EVENT_MAX_BYTES" in answers[2]["error"]

    # a flood: the burst of 5 (two already used: the join, which the same bucket charges,
    # and the first event) passes, the rest is refused
    flood = [await sender.call("item_removed", {"n": n}) for n in range(10)]
    assert [a["ok"] for a in flood].count(True) == 3
    assert "rate limit" in flood[-1]["error"]
    await same_room.wait_for(4)
    await other_room.call("join", "elsewhere")  # barrier
    assert other_room.events == [] and sender.events == []
    for client in (sender, same_room, other_room):
        await client.close()


async def test_a_client_event_from_a_client_in_no_room_reaches_its_namespace_but_the_sender(
    processes: Processes, stack: Stack
) -> None:
    # Given a sender in no room; in '/', a client in no room and one in a room; and a client
    # of another namespace
    processes.server(stack)
    sender = await RecordingClient().connect(stack.base_url)
    roomless = await RecordingClient().connect(stack.base_url)
    in_room = await RecordingClient().connect(stack.base_url)
    assert (await in_room.call("join", "shop"))["ok"]
    elsewhere = await RecordingClient().connect(stack.base_url, namespaces=["/other"])

    # When the sender sends an allowed client event
    answer = await sender.call("item_removed", {"id": 7})

    # Then every other client of '/' gets it, with the sender's sid; not the sender, and not
    # the other namespace
    assert answer == {"ok": True, "relayed_to": None}
    relayed = ("item_removed", {"data": {"id": 7}, "from": sender.sio.get_sid("/")})
    assert await roomless.wait_for(1) == [relayed]
    assert await in_room.wait_for(1) == [relayed]
    await sender.call("join", "barrier")
    assert (await elsewhere.sio.call("join", "barrier", namespace="/other", timeout=10))["ok"]
    assert sender.events == [] and elsewhere.events == []
    for client in (sender, roomless, in_room, elsewhere):
        await client.close()


def run_server(stack: Stack, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "server"],
        env=stack.env(**env),
        cwd=ROOT.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ZMQ_BIND": "tcp://0.0.0.0:{port}"}, "ZMQ_BIND=tcp://0.0.0.0:"),
        (
            {"SQS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/q", "JWT_SECRET": ""},
            "AUTH=jwt needs JWT_SECRET",
        ),
        ({"JWT_SECRET": "short"}, "JWT_SECRET: must be at least 32 characters"),
        ({"ZMQ_CURVE_SERVER_SECRET": "x" * 40}, "ZMQ_CURVE_CLIENT_KEYS is empty"),
        (
            {
                "JWT_ALGORITHMS": "HS256",
                "JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----",
                "JWT_SECRET": "",
                "DEMO": "0",
            },
            "HS* algorithm",
        ),
        ({"JWT_AUDIENCE": ""}, "JWT_AUDIENCE='': must not be empty"),
        ({"DEFAULT_EVENT": "connect"}, "DEFAULT_EVENT='connect': is a reserved"),
        ({"SQS_VISIBILITY_TIMEOUT_S": "0"}, "SQS_VISIBILITY_TIMEOUT_S='0':"),
        (
            {"SQS_VISIBILITY_TIMEOUT_S": "10", "ACK_TIMEOUT_S": "10"},
            "ACK_TIMEOUT_S='10': must be below SQS_VISIBILITY_TIMEOUT_S",
        ),
    ],
)
def test_unsafe_settings_stop_the_server_at_start(
    stack: Stack, env: dict[str, str], message: str
) -> None:
    result = run_server(stack, **{k: v.format(port=stack.zmq_port) for k, v in env.items()})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "JWT_SECRET='" not in result.stderr  # a secret is never echoed


async def test_curve_lets_in_the_listed_worker_key_only(processes: Processes, stack: Stack) -> None:
    server_public, server_secret = (k.decode() for k in zmq.curve_keypair())
    good_public, good_secret = (k.decode() for k in zmq.curve_keypair())
    _bad_public, bad_secret = (k.decode() for k in zmq.curve_keypair())
    processes.sqs(stack)
    processes.server(
        stack, ZMQ_CURVE_SERVER_SECRET=server_secret, ZMQ_CURVE_CLIENT_KEYS=good_public
    )
    client = await RecordingClient().connect(stack.base_url)
    sqs = stack.sqs_client()

    # a worker with an unlisted key (and one with no keys at all) never gets an answer...
    curve = {"ZMQ_CURVE_SERVER_PUBLIC": server_public}
    intruder = processes.worker(stack, name="bad-key", ZMQ_CURVE_CLIENT_SECRET=bad_secret, **curve)
    plain = processes.worker(stack, name="no-key")
    ids = send(sqs, stack.queue_url, [{"event": "e", "data": n} for n in range(5)])
    for worker in (intruder, plain):
        wait_until(
            lambda w=worker: "Waiting for server(s)" in w.log(), timeout_s=30, what="waiting"
        )
    assert attributes(sqs, stack.queue_url) == {"visible": 5, "invisible": 0}
    # ...while the listed one delivers
    processes.worker(stack, name="good-key", ZMQ_CURVE_CLIENT_SECRET=good_secret, **curve)
    await client.wait_for(5)
    assert sorted(client.ids()) == sorted(ids)
    assert "is ready" not in intruder.log() and "is ready" not in plain.log()
    await client.close()


async def test_with_curve_the_server_binds_beyond_loopback_and_its_worker_gets_in(
    processes: Processes, stack: Stack
) -> None:
    # Given CURVE keys, and a server bound to every interface (the test's traffic still goes
    # over 127.0.0.1)
    server_public, server_secret = (k.decode() for k in zmq.curve_keypair())
    worker_public, worker_secret = (k.decode() for k in zmq.curve_keypair())
    everywhere = f"tcp://0.0.0.0:{stack.zmq_port}"
    processes.sqs(stack)
    # When the server starts
    server = processes.server(
        stack,
        ZMQ_BIND=everywhere,
        ZMQ_CURVE_SERVER_SECRET=server_secret,
        ZMQ_CURVE_CLIENT_KEYS=worker_public,
    )
    # Then it runs, bound there (without CURVE it refuses to start:
    # test_unsafe_settings_stop_the_server_at_start), and its worker gets in over CURVE
    assert f"ZeroMQ subscriber bound to {everywhere}" in server.log()
    processes.worker(
        stack,
        ZMQ_CONNECT=f"tcp://127.0.0.1:{stack.zmq_port}",
        ZMQ_CURVE_SERVER_PUBLIC=server_public,
        ZMQ_CURVE_CLIENT_SECRET=worker_secret,
    )
    await asyncio.to_thread(
        wait_until,
        lambda: healthz(stack.base_url)["workers_connected"] == 1,
        timeout_s=30,
        what="the CURVE worker connected",
    )


def get_demo_token(stack: Stack) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"{stack.base_url}/demo/token", timeout=5) as response:
            return response.status, json.loads(response.read())["token"]
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response's socket
        return exc.code, ""


async def test_a_loopback_queue_other_than_the_embedded_one_serves_no_demo(
    processes: Processes, stack: Stack
) -> None:
    # Given a queue on loopback that is not the embedded emulator's (a LocalStack sidecar,
    # say, or a tunnel to real data): this test stack's own queue URL is such a one
    processes.server(stack)
    # Then nobody can fetch a token for any room
    assert get_demo_token(stack)[0] == 404
    request = urllib.request.Request(f"{stack.base_url}/demo/send", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    caught.value.close()
    assert caught.value.code == 404


async def test_a_demo_token_is_not_signed_with_jwt_secret(
    processes: Processes, stack: Stack
) -> None:
    import jwt

    processes.server(stack, DEMO="1")
    status, demo = get_demo_token(stack)
    assert status == 200
    # it does not verify with the configured secret (so it opens no other server that shares
    # that secret), yet it opens this one, beside tokens signed with that secret
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(demo, TEST_SECRET, algorithms=["HS256"], options={"verify_aud": False})
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(stack.base_url, auth={"token": demo}, wait_timeout=10)
    await client.disconnect()
    other = await RecordingClient().connect(stack.base_url)
    await other.close()


async def test_a_demo_token_opens_the_main_namespace_of_its_own_server_process_only(
    processes: Processes, stack: Stack
) -> None:
    import jwt

    # Given two server processes with DEMO=1 and the same JWT_SECRET
    processes.server(stack, DEMO="1")
    other = Stack()
    second = processes.start("server-2", ["-m", "server"], other.env(DEMO="1"))
    second.wait_ready(lambda: healthz(other.base_url)["subscriber"], what="the second server")

    # When a client fetches a demo token from the first
    status, demo = get_demo_token(stack)

    # Then it says it is a demo token, lasts an hour, and opens '/' of that server only
    assert status == 200
    assert jwt.get_unverified_header(demo)["kid"] == "push-relay-demo"
    claims = jwt.decode(demo, options={"verify_signature": False})
    assert claims["iss"] == "push-relay-demo" and claims["exp"] - claims["iat"] == 3600
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(stack.base_url, auth={"token": demo}, wait_timeout=10)
    await client.disconnect()
    assert "not allowed to connect to namespace '/admin'" in await refused(
        stack.base_url, {"token": demo}, namespaces=["/admin"]
    )
    assert "signature does not verify" in await refused(other.base_url, {"token": demo})
    # while a token signed with the shared JWT_SECRET opens both
    for base_url in (stack.base_url, other.base_url):
        await (await RecordingClient().connect(base_url)).close()


async def test_cors_is_same_origin_unless_configured(processes: Processes, stack: Stack) -> None:
    processes.server(stack)
    # Engine.IO's handshake from a foreign origin is refused. Checked over plain HTTP: the
    # python-engineio client resets its session before it reads a refusal's body, so through
    # it this fails now and then with "Connection closed" instead of a ConnectionError.
    handshake = urllib.request.Request(
        f"{stack.base_url}/socket.io/?EIO=4&transport=polling",
        headers={"Origin": "http://evil.example"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        await asyncio.to_thread(urllib.request.urlopen, handshake, timeout=10)
    caught.value.close()
    assert caught.value.code == 400
    same = await RecordingClient().connect(stack.base_url, headers={"Origin": stack.base_url})
    await same.close()


async def test_cors_allows_a_configured_origin(processes: Processes, stack: Stack) -> None:
    processes.server(stack, CORS_ALLOWED_ORIGINS="http://app.example")
    client = await RecordingClient().connect(
        stack.base_url, headers={"Origin": "http://app.example"}
    )
    await client.close()


async def test_cors_star_lets_any_origin_through(processes: Processes, stack: Stack) -> None:
    processes.server(stack, CORS_ALLOWED_ORIGINS="*")
    # Engine.IO's polling handshake from a foreign origin is answered, and allowed by name
    for origin in ("http://elsewhere.example", "https://app.example:8443"):
        handshake = urllib.request.Request(
            f"{stack.base_url}/socket.io/?EIO=4&transport=polling", headers={"Origin": origin}
        )
        with await asyncio.to_thread(urllib.request.urlopen, handshake, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == origin
            assert b'"sid"' in response.read()
