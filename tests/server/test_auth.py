"""Authenticator: tokens, namespaces, rooms, issuer, expiry and demo tokens, as plain function
calls; and the expiry check on join and resume, against python-socketio's real server."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
import socketio
from socketio.exceptions import ConnectionRefusedError as Refused

import server.sessions.auth
from server.history.local import LocalHistory
from server.history.replay import ReplayBuffer
from server.sessions.auth import ANYONE, DEMO_ISSUER, DEMO_KEY_ID, Authenticator, AuthError
from server.sessions.handlers import SessionNamespace
from shared import counters as c
from shared.counters import Counters
from shared.settings import EMBEDDED_QUEUE_URL, load_settings
from tests.tokens import TEST_SECRET, token

AWS_QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"


def authenticator(**env: str) -> Authenticator:
    return Authenticator.from_settings(
        load_settings({"SQS_QUEUE_URL": AWS_QUEUE, "JWT_SECRET": TEST_SECRET} | env)
    )


def refusal(auth: Authenticator, signed: str, namespace: str = "/") -> str:
    with pytest.raises(AuthError) as caught:
        auth.verify({"token": signed}, namespace=namespace)
    return str(caught.value)


# --- namespaces ------------------------------------------------------------------------------
def test_a_token_without_a_namespaces_claim_may_use_the_main_namespace_only() -> None:
    auth = authenticator()
    shop = token(["shop"], namespaces=None)
    identity = auth.verify({"token": shop})
    assert identity.namespace_patterns == ("/",)
    assert identity.may_join("shop") and not identity.may_join("admin")
    assert "namespace '/admin'" in refusal(auth, shop, "/admin")


@pytest.mark.parametrize(
    ("patterns", "allowed", "refused"),
    [
        (["/admin"], ["/admin"], ["/", "/admin2", "/adm"]),
        (["/orders*"], ["/orders", "/orders-eu"], ["/", "/admin"]),
        (["/", "/chat"], ["/", "/chat"], ["/admin"]),
        (["*"], ["/", "/admin", "/anything"], []),
        ([], [], ["/", "/admin"]),
    ],
)
def test_the_namespaces_claim_lists_patterns_like_rooms(
    patterns: list[str], allowed: list[str], refused: list[str]
) -> None:
    auth = authenticator()
    signed = token(namespaces=patterns)
    for namespace in allowed:
        identity = auth.verify({"token": signed}, namespace=namespace)
        assert identity.may_connect(namespace)
        assert identity.namespace_patterns == tuple(patterns)
    for namespace in refused:
        assert "not allowed to connect to namespace" in refusal(auth, signed, namespace)


def test_the_namespaces_claim_is_configurable_and_must_be_a_list_of_strings() -> None:
    auth = authenticator(JWT_NAMESPACES_CLAIM="ns")
    assert auth.verify({"token": token(ns=["/admin"])}, namespace="/admin").may_connect("/admin")
    assert "'ns' must be a list of strings" in refusal(auth, token(ns="/admin"), "/admin")
    assert "'ns' must be a list of strings" in refusal(auth, token(ns=[1]), "/")


# --- audience --------------------------------------------------------------------------------
def test_a_token_must_name_the_relay_as_its_audience_by_default() -> None:
    # Given the app's own session token, signed with the same secret: sub and exp, no aud
    auth = authenticator()
    session = jwt.encode({"sub": "u1", "exp": int(time.time()) + 60}, TEST_SECRET, "HS256")
    # Then it does not open the relay
    assert "'aud'" in refusal(auth, session)
    assert "push-relay" in refusal(auth, session)
    assert "audience" in refusal(auth, token(aud="my-app"))
    assert auth.verify({"token": token()}).subject == "test"


def test_the_audience_can_be_changed() -> None:
    auth = authenticator(JWT_AUDIENCE="relay.example.com")
    assert auth.verify({"token": token(aud="relay.example.com")}).subject == "test"
    assert "audience" in refusal(auth, token())


# --- issuer ----------------------------------------------------------------------------------
ISSUER = "https://login.example.com"


def test_with_jwt_issuer_set_a_token_needs_that_iss() -> None:
    auth = authenticator(JWT_ISSUER=ISSUER)
    assert auth.verify({"token": token(iss=ISSUER)}).subject == "test"
    assert refusal(auth, token(iss="https://other.example.com")) == (
        f"token issuer is not {ISSUER!r}"
    )
    assert refusal(auth, token(iss=None)) == "token has no 'iss' claim"


def test_without_jwt_issuer_any_iss_or_none_is_accepted() -> None:
    auth = authenticator()
    for iss in ("https://other.example.com", ISSUER, None):
        assert auth.verify({"token": token(iss=iss)}).subject == "test", iss


# --- expiry ----------------------------------------------------------------------------------
def test_the_identity_knows_when_its_token_expires() -> None:
    auth = authenticator(JWT_LEEWAY_S="10")
    exp = int(time.time()) + 60
    identity = auth.verify({"token": token(exp=exp)})
    assert identity.expires_at == exp
    assert not identity.expired()
    assert not identity.expired(now=exp + 5)  # within the leeway connect allows too
    assert identity.expired(now=exp + 11)


def test_jwt_leeway_s_lets_a_token_expired_moments_ago_connect() -> None:
    # Given a token that expired 2 s ago
    expired = token(exp=int(time.time()) - 2)
    # Then a clock-skew leeway of 10 s lets it in, and none refuses it
    assert authenticator(JWT_LEEWAY_S="10").verify({"token": expired}).subject == "test"
    assert refusal(authenticator(JWT_LEEWAY_S="0"), expired) == "token expired"


class Transport:
    """engine.io's socket, as far as python-socketio's server sends to it."""

    closed = False

    async def send(self, packet: Any) -> None:
        pass


class Handlers:
    """The relay's handlers on python-socketio's real server, JWTs checked with `settings`."""

    def __init__(self, **settings: str) -> None:
        self.settings = load_settings(
            {"SQS_QUEUE_URL": AWS_QUEUE, "JWT_SECRET": TEST_SECRET} | settings
        )
        self.sio = socketio.AsyncServer(async_mode="asgi", namespaces="*")
        self.replay = ReplayBuffer(window_s=3600, max_events=100, max_bytes=1 << 20)
        self.counters = Counters()
        self.namespace = SessionNamespace(
            settings=self.settings,
            auth=Authenticator.from_settings(self.settings),
            history=LocalHistory(self.replay, counters=self.counters),
            counters=self.counters,
        )
        self.sio.register_namespace(self.namespace)

    def history(self, room: str | None, count: int) -> dict[str, Any]:
        """`count` events on `room` (None: room-less); the position before them, to resume
        from."""
        stream = ("/", room)
        for _ in range(count):
            offset = self.replay.next_offset(stream)
            self.replay.append(stream, offset, "e", {"offset": offset}, 20)
        return {"epoch": self.replay.epoch, "offset": 0}

    async def connect(self, eio_sid: str, auth: dict[str, Any]) -> str:
        """python-socketio's own connect sequence, with the handler in the middle."""
        self.sio.eio.sockets[eio_sid] = Transport()
        sid: str = await self.sio.manager.pre_connect(eio_sid, "/")
        await self.namespace.trigger_event("connect", "/", sid, {}, auth)
        await self.sio.manager.connect(sid, "/")
        return sid

    async def request(self, event: str, sid: str, data: Any) -> Any:
        return await self.namespace.trigger_event(event, "/", sid, data)


async def test_join_and_a_resume_on_join_are_refused_once_the_token_expired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a client connected with a token that expires at `exp`, a leeway of 10 s, and a
    # clock the test moves (the server's own timer, which would disconnect the client at
    # exp + 10 s, is an hour away: what is checked here is the join's own check)
    handlers = Handlers(JWT_LEEWAY_S="10")
    since = handlers.history("shop", 3)
    exp = int(time.time()) + 3600
    sid = await handlers.connect("eio1", {"token": token(exp=exp)})
    clock = SimpleNamespace(time=lambda: exp + 5.0)
    monkeypatch.setattr(server.sessions.auth, "time", clock)
    # and, within the leeway, a resume on join is still served
    served = await handlers.request("join", sid, {"room": "shop", "since": since})
    assert served["ok"] and served["replayed"] == 3

    # When the clock reaches exp + leeway
    clock.time = lambda: exp + 10.0

    # Then a join and a resume on join are refused with the reason, and nothing is replayed
    refused = {"ok": False, "error": "token expired: reconnect with a new token"}
    assert await handlers.request("join", sid, "news") == refused
    assert await handlers.request("join", sid, {"room": "shop", "since": since}) == refused
    assert handlers.counters.get(c.REPLAYED) == 3
    await handlers.namespace.on_disconnect("/", sid)  # cancels its expiry timer


async def test_a_resume_on_connect_with_an_expired_token_is_refused() -> None:
    # Given a room-less stream with history, which a valid token resumes
    handlers = Handlers(JWT_LEEWAY_S="10")
    since = handlers.history(None, 3)
    first = await handlers.connect("eio1", {"token": token(), "since": since})
    assert handlers.counters.get(c.REPLAYED) == 3
    # When a client reconnects to resume it with a token expired beyond the leeway
    expired = token(exp=int(time.time()) - 11)
    with pytest.raises(Refused) as caught:
        await handlers.connect("eio2", {"token": expired, "since": since})
    # Then it is refused with the reason, and nothing more is replayed
    assert caught.value.error_args["message"] == "token expired"
    assert handlers.counters.get(c.REPLAYED) == 3
    assert list(handlers.namespace.connections) == [("/", first)]
    await handlers.namespace.on_disconnect("/", first)


def test_anyone_may_connect_anywhere_and_never_expires() -> None:
    auth = Authenticator.from_settings(load_settings({"AUTH": "none"}))
    identity = auth.verify(None, namespace="/admin")
    assert identity is ANYONE
    assert identity.may_connect("/admin") and identity.may_join("any")
    assert identity.expires_at is None and not identity.expired(now=time.time() + 10**9)


# --- demo tokens -----------------------------------------------------------------------------
def test_a_demo_token_is_never_signed_with_the_configured_secret() -> None:
    auth = authenticator(DEMO="1")
    demo = auth.demo_token()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(demo, TEST_SECRET, algorithms=["HS256"], audience="push-relay")
    # yet this server verifies it, and the configured secret's tokens still work beside it
    assert auth.verify({"token": demo}).may_join("anything")
    assert auth.verify({"token": token()}).subject == "test"


def test_a_demo_token_says_what_it_is_lasts_an_hour_and_opens_the_main_namespace_only() -> None:
    auth = authenticator(DEMO="1")
    demo = auth.demo_token()
    header = jwt.get_unverified_header(demo)
    claims = jwt.decode(demo, options={"verify_signature": False})
    assert header["kid"] == DEMO_KEY_ID == "push-relay-demo"
    assert claims["iss"] == DEMO_ISSUER == "push-relay-demo"
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["namespaces"] == ["/"] and claims["rooms"] == ["*"]
    assert auth.verify({"token": demo}).may_join("any-room")
    assert "not allowed to connect to namespace '/admin'" in refusal(auth, demo, "/admin")


def test_a_demo_token_is_good_for_its_own_run_only() -> None:
    first, second = authenticator(DEMO="1"), authenticator(DEMO="1")
    assert "signature does not verify" in refusal(second, first.demo_token())
    # nor on a server without demo, with the same configured secret
    assert "signature does not verify" in refusal(authenticator(), first.demo_token())


def test_a_token_cannot_claim_to_be_a_demo_token_to_pick_another_key() -> None:
    auth = authenticator(DEMO="1")
    demo_header = jwt.get_unverified_header(auth.demo_token())
    forged = jwt.encode(
        jwt.decode(auth.demo_token(), options={"verify_signature": False}),
        TEST_SECRET,
        algorithm="HS256",
        headers=demo_header,
    )
    assert "signature does not verify" in refusal(auth, forged)


def test_demo_tokens_are_off_unless_demo_is_on() -> None:
    with pytest.raises(AuthError):
        authenticator().demo_token()


def test_demo_without_a_configured_key_accepts_demo_tokens_only() -> None:
    auth = Authenticator.from_settings(load_settings({"SQS_QUEUE_URL": EMBEDDED_QUEUE_URL}))
    assert auth.verify({"token": auth.demo_token()}).subject.startswith("demo-")
    assert "signature does not verify" in refusal(auth, token())


def test_demo_works_beside_a_public_key() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    auth = authenticator(JWT_SECRET="", JWT_PUBLIC_KEY=pem.decode(), DEMO="1")
    assert auth.verify({"token": auth.demo_token()}).subject.startswith("demo-")
    signed = jwt.encode(
        {"sub": "u", "aud": "push-relay", "exp": int(time.time()) + 60}, key, algorithm="ES256"
    )
    assert auth.verify({"token": signed}).subject == "u"
