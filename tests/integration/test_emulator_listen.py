"""SQS_EMULATOR_LISTEN: the emulator serving a queue URL that names it by a host name, as in a
container that others reach through a Service (deploy/kubernetes/overlays/local). The real
emulator process; every byte stays on 127.0.0.0/8 (Linux routes all of it to `lo`): it listens
on 127.0.0.2, and the queue URL's host, `sqs.test`, is a reserved name that resolves nowhere,
so only an emulator that never calls the URL's host can create its queues.

The last tests check `listen_address`, the emulator's choice of address, without a process:
the wildcard and IPv6 cases are not for a test machine to bind."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import boto3
import pytest

from shared.settings import load_settings
from sqs_emulator.__main__ import Listen, Refused, listen_address
from tests.processes import Processes, Stack, free_port

LISTEN = "127.0.0.2"  # loopback, but not the 127.0.0.1 a default emulator would bind
HOST = "sqs.test"  # RFC 2606: never resolves


def queue_url(port: int, name: str = "q") -> str:
    return f"http://{HOST}:{port}/123456789012/{name}"


def client_at(endpoint: str) -> Any:
    """A client calling `endpoint` whatever host a QueueUrl names, as a container's clients
    call the Service: moto finds a queue by the URL's path."""
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_with_sqs_emulator_listen_it_serves_a_host_name_queue_url_at_that_address(
    processes: Processes, stack: Stack
) -> None:
    # Given a queue URL whose host is no loopback address, and resolves nowhere
    port, name = free_port(), f"test-{uuid.uuid4().hex[:8]}"
    url = queue_url(port, name)
    assert not load_settings({"SQS_QUEUE_URL": url}).queue_is_local
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(HOST, port)

    # When the emulator starts with SQS_EMULATOR_LISTEN=127.0.0.2
    emulator = processes.start(
        "sqs", ["-m", "sqs_emulator"], stack.env(SQS_QUEUE_URL=url, SQS_EMULATOR_LISTEN=LISTEN)
    )
    ready = f"listening on http://{LISTEN}:{port}; queue {url} ready"
    emulator.wait_ready(lambda: ready in emulator.log(), what="the emulator to log it is ready")

    # Then it created the queue and its dead-letter queue, through 127.0.0.2, not sqs.test
    sqs = client_at(f"http://{LISTEN}:{port}")
    attributes = ["QueueArn", "RedrivePolicy"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=attributes)["Attributes"]
    dlq_url = queue_url(port, f"{name}-dlq")
    dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]
    assert f'"deadLetterTargetArn": "{dlq["QueueArn"]}"' in queue["RedrivePolicy"]
    # and a message sent to that address comes back from it
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    (message,) = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
    assert message["Body"] == "hello"
    # It listens on 127.0.0.2 only (not on 127.0.0.1 at that port), and does not warn: 127.0.0.2
    # is loopback
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert "beyond loopback" not in emulator.log()


def test_without_sqs_emulator_listen_a_queue_url_beyond_loopback_is_refused_naming_it(
    processes: Processes, stack: Stack
) -> None:
    # Given the same kind of queue URL and no SQS_EMULATOR_LISTEN
    url = queue_url(free_port())
    env = stack.env(SQS_QUEUE_URL=url)
    env.pop("SQS_EMULATOR_LISTEN", None)  # not from the developer's shell either
    # When the emulator starts
    emulator = processes.start("sqs", ["-m", "sqs_emulator"], env)
    # Then it exits with status 2, saying which setting would serve it
    assert emulator.wait(60) == 2, emulator.log()
    assert "not on loopback" in emulator.log()
    assert "SQS_EMULATOR_LISTEN" in emulator.log()


def test_an_sqs_emulator_listen_that_is_not_an_ip_address_stops_it_naming_the_variable(
    processes: Processes, stack: Stack
) -> None:
    emulator = processes.start(
        "sqs", ["-m", "sqs_emulator"], stack.env(SQS_EMULATOR_LISTEN="not-an-ip")
    )
    assert emulator.wait(60) == 2, emulator.log()
    assert "SQS_EMULATOR_LISTEN='not-an-ip': must be an IP address" in emulator.log()


# --- listen_address, without a process ----------------------------------------------------------


def plan(**env: str) -> Listen:
    return listen_address(load_settings(env))


def test_a_wildcard_listen_address_is_exposed_and_the_emulator_calls_itself_on_loopback() -> None:
    url = "http://sqs-push-relay-sqs:9324/123456789012/push-relay"
    assert plan(SQS_QUEUE_URL=url, SQS_EMULATOR_LISTEN="0.0.0.0") == Listen(
        host="0.0.0.0", port=9324, self_url="http://127.0.0.1:9324", exposed=True
    )
    assert plan(SQS_QUEUE_URL=url, SQS_EMULATOR_LISTEN="::") == Listen(
        host="::", port=9324, self_url="http://[::1]:9324", exposed=True
    )
    # a specific address is called at itself; a loopback one is not exposed
    assert plan(SQS_QUEUE_URL=url, SQS_EMULATOR_LISTEN="10.1.2.3").self_url == (
        "http://10.1.2.3:9324"
    )
    assert not plan(SQS_QUEUE_URL=url, SQS_EMULATOR_LISTEN="127.0.0.2").exposed


def test_without_sqs_emulator_listen_it_binds_the_loopback_host_of_the_queue_url() -> None:
    url = "http://127.0.0.1:9324/123456789012/push-relay"
    assert plan(SQS_QUEUE_URL=url) == Listen(
        host="127.0.0.1", port=9324, self_url="http://127.0.0.1:9324", exposed=False
    )
    with pytest.raises(Refused, match="AWS_ENDPOINT_URL_SQS is set"):
        plan(SQS_QUEUE_URL=url, AWS_ENDPOINT_URL_SQS="http://127.0.0.1:9324")


def test_with_sqs_emulator_listen_an_endpoint_is_allowed_only_at_the_queue_urls_host() -> None:
    url = "http://sqs:9324/123456789012/push-relay"
    assert plan(
        SQS_QUEUE_URL=url, SQS_EMULATOR_LISTEN="0.0.0.0", AWS_ENDPOINT_URL_SQS="http://sqs:9324"
    )
    with pytest.raises(Refused, match="AWS_ENDPOINT_URL_SQS=http://other:9324 is not"):
        plan(
            SQS_QUEUE_URL=url,
            SQS_EMULATOR_LISTEN="0.0.0.0",
            AWS_ENDPOINT_URL_SQS="http://other:9324",
        )


def test_a_queue_url_the_emulator_could_never_answer_is_refused_even_with_a_listen_address() -> (
    None
):
    with pytest.raises(Refused, match="moto serves HTTP"):
        plan(
            SQS_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/111122223333/push-relay",
            SQS_EMULATOR_LISTEN="0.0.0.0",
        )
    with pytest.raises(Refused, match="clients calling the queue URL would not reach"):
        plan(
            SQS_QUEUE_URL="http://127.0.0.1:9324/123456789012/push-relay",
            SQS_EMULATOR_LISTEN="127.0.0.2",
        )
