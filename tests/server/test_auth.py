"""Authenticator: tokens, namespaces, rooms, expiry and demo tokens, as plain function calls."""

from __future__ import annotations

import time

import jwt
import pytest

from server.auth import ANYONE, Authenticator, AuthError
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


# --- expiry ----------------------------------------------------------------------------------
def test_the_identity_knows_when_its_token_expires() -> None:
    auth = authenticator(JWT_LEEWAY_S="10")
    exp = int(time.time()) + 60
    identity = auth.verify({"token": token(exp=exp)})
    assert identity.expires_at == exp
    assert not identity.expired()
    assert not identity.expired(now=exp + 5)  # within the leeway connect allows too
    assert identity.expired(now=exp + 11)


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
