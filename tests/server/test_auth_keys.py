"""Authenticator with JWT_PUBLIC_KEY: RS256 and ES256 tokens, the key as PEM text or as a
file path, tokens of another key refused, and the algorithm-confusion forgery refused. Keys
are made here, per test run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from server.sessions.auth import Authenticator, AuthError
from shared.settings import load_settings
from tests.tokens import hs256_by_hand

AWS_QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"


def new_key(algorithm: str) -> Any:
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: PrivateKeyTypes) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def claims() -> dict[str, Any]:
    return {"sub": "u", "aud": "push-relay", "exp": int(time.time()) + 60, "rooms": ["*"]}


def authenticator(public_key: str) -> Authenticator:
    return Authenticator.from_settings(
        load_settings({"SQS_QUEUE_URL": AWS_QUEUE, "JWT_PUBLIC_KEY": public_key})
    )


def refusal(auth: Authenticator, signed: str) -> str:
    with pytest.raises(AuthError) as caught:
        auth.verify({"token": signed})
    return str(caught.value)


@pytest.fixture(params=["RS256", "ES256"])
def algorithm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("given_as", ["PEM text", "file path"])
def test_a_public_key_verifies_its_private_keys_tokens_and_no_other(
    algorithm: str, given_as: str, tmp_path: Path
) -> None:
    # Given JWT_PUBLIC_KEY set to a public key, as PEM text or as the path of its file
    key = new_key(algorithm)
    pem = public_pem(key)
    (tmp_path / "public.pem").write_bytes(pem)
    setting = pem.decode() if given_as == "PEM text" else str(tmp_path / "public.pem")
    auth = authenticator(setting)

    # Then a token signed with its private key opens the relay
    assert auth.verify({"token": jwt.encode(claims(), key, algorithm=algorithm)}).subject == "u"
    # and one signed with another key of the same kind does not
    forged = jwt.encode(claims(), new_key(algorithm), algorithm=algorithm)
    assert refusal(auth, forged) == "token signature does not verify"


def test_an_hs256_token_signed_with_the_public_key_itself_is_refused(algorithm: str) -> None:
    # Given a relay that verifies with a public key, which anyone may know
    pem = public_pem(new_key(algorithm))
    auth = authenticator(pem.decode())
    # When an attacker signs HS256 with the public key's PEM bytes as the HMAC secret
    forged = hs256_by_hand(claims(), pem)
    assert jwt.get_unverified_header(forged)["alg"] == "HS256"
    # Then the relay refuses the algorithm instead of checking the HMAC with that key
    assert refusal(auth, forged) == f"token algorithm is not one of {['RS256', 'ES256']}"
