"""deploy/iam/: each role's policy allows exactly the SQS calls its part of the relay makes.

The emulator records every request (moto's own recorder, tests/deploy/sqs_calls.py), each
marked by its caller (botocore's `user_agent_appid`, set by shared.sqs.make_sqs_client). Real
processes then take every path that calls SQS: delivery, a dead-lettered message, a batch no
server confirmed, the demo page's send, the consumer running as threads in the server. Per
role, every recorded (action, queue) must be allowed by its policy, and everything its policy
allows must have been recorded at least once, except the statements NOT_EXERCISED names.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import urllib.request
from pathlib import Path
from typing import Any

from shared.sqs import (
    EMULATOR_APP,
    PRESENCE_APP,
    PRODUCER_APP,
    SERVER_APP,
    WORKER_APP,
    make_sqs_client,
)
from tests.clients import RecordingClient
from tests.deploy.sqs_calls import describe, recorded, recording_env
from tests.integration.helpers import report, run_producer, wait_log, wait_queue_empty_async
from tests.processes import ROOT, Processes, Stack, healthz, wait_until
from tests.tokens import token

POLICIES = ROOT / "deploy" / "iam"

#: The policies each caller's requests are checked against (deploy/iam/README.md's table).
ROLES: dict[str, tuple[str, ...]] = {
    WORKER_APP: ("worker.json",),
    PRODUCER_APP: ("producer.json",),
    SERVER_APP: ("producer.json",),  # the demo page's /demo/send: a producer's one call
    PRESENCE_APP: ("presence-events.json",),  # the server's online/offline events
}

#: Statements no relay process calls, so nothing here can record them: (file, Sid) -> why.
NOT_EXERCISED: dict[tuple[str, str], str] = {
    ("sse-kms.json", "UseTheQueuesKmsKeyThroughSqs"): (
        "SQS calls KMS on the caller's behalf for a queue encrypted with a customer managed "
        "key; moto's SQS encrypts nothing and makes no KMS call"
    ),
    ("keda.json", "ReadTheQueueDepth"): "KEDA's aws-sqs-queue scaler calls it, not the relay",
}

#: The IAM action that authorises each SQS API call: a batch call needs its single call's
#: action (AWS, "Amazon SQS API permissions: Actions and resource reference",
#: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-api-permissions-reference.html).
#: Every other call needs the action of its own name.
BATCH_CALLS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}

Call = tuple[str, str]  # (IAM action, resource ARN)


def iam_action(api_call: str) -> str:
    return "sqs:" + BATCH_CALLS.get(api_call, api_call)


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def policy(name: str, values: dict[str, str] | None = None) -> dict[str, Any]:
    """A policy document with its ${Placeholders} filled from `values` (as the README says to
    fill them in); left as they are without `values`."""
    text = (POLICIES / name).read_text()
    if values is not None:
        text = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], text)
    document: dict[str, Any] = json.loads(text)
    return document


def allowed(files: tuple[str, ...], values: dict[str, str]) -> set[Call]:
    """Every (action, resource) the Allow statements of `files` grant. The SQS statements have
    no wildcard and no Condition (test_every_policy_is_explicit), so this set is exactly what
    IAM would allow."""
    return {
        (action, resource)
        for name in files
        for statement in policy(name, values)["Statement"]
        if statement["Effect"] == "Allow" and (name, statement["Sid"]) not in NOT_EXERCISED
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }


def calls_by_app(records: list[dict[str, Any]], account: str) -> dict[str | None, set[Call]]:
    """Each caller's (IAM action, queue ARN) pairs. A GetQueueUrl without an owner account
    asks for a queue of the caller's own account."""
    calls: dict[str | None, set[Call]] = {}
    for r in records:
        arn = f"arn:aws:sqs:{r['region']}:{r['account'] or account}:{r['queue']}"
        calls.setdefault(r["app"], set()).add((iam_action(r["action"]), arn))
    return calls


def placeholders(stack: Stack, region: str) -> dict[str, str]:
    account = stack.queue_url.split("/")[-2]
    return {
        "Region": region,
        "Account": account,
        "QueueName": stack.queue_name,
        "DeadLetterQueueName": f"{stack.queue_name}-dlq",  # the emulator's DLQ
        "PresenceEventsQueueName": f"{stack.queue_name}-presence",
    }


def check(
    stack: Stack, records: list[dict[str, Any]], apps: tuple[str, ...], *, show: bool = True
) -> tuple[dict[str, set[Call]], dict[str, set[Call]], dict[str, set[Call]]]:
    """Per app: (what it called, what it called that its policies refuse, what its policies
    allow that it never called)."""
    regions = {r["region"] for r in records}
    assert regions == {stack.settings().region}, regions
    values = placeholders(stack, stack.settings().region)
    by_app = calls_by_app(records, values["Account"])
    apps_seen = {WORKER_APP, PRODUCER_APP, SERVER_APP, PRESENCE_APP, EMULATOR_APP, None}
    assert set(by_app) <= apps_seen, set(by_app)
    called = {app: by_app.get(app, set()) for app in apps}
    grants = {app: allowed(ROLES[app], values) for app in apps}
    refused = {app: called[app] - grants[app] for app in apps}
    unused = {app: grants[app] - called[app] for app in apps}
    for app in apps if show else ():
        api = sorted({f"{r['action']}@{r['queue']}" for r in records if r["app"] == app})
        report(f"IAM {app}", api_calls=",".join(api))
    return called, refused, unused


def produce(stack: Stack, *args: str) -> None:
    """`python -m producer` (the command sqs-relay-publish), as a person runs it."""
    sent = run_producer(stack, *args)
    assert sent.returncode == 0, sent.stderr


async def produce_async(stack: Stack, *args: str) -> None:
    await asyncio.to_thread(produce, stack, *args)


def test_every_policy_is_explicit_and_every_statement_is_checked() -> None:
    # Given every policy document in deploy/iam/
    names = sorted(path.name for path in POLICIES.glob("*.json"))
    assert names == [
        "keda.json",
        "presence-events.json",
        "producer.json",
        "sse-kms.json",
        "worker.json",
    ]
    checked = {name for files in ROLES.values() for name in files}
    for name in names:
        document = policy(name)
        assert document["Version"] == "2012-10-17", name
        for statement in document["Statement"]:
            # Then each statement is a named Allow of listed actions on named resources
            where = f"{name}: {statement.get('Sid')}"
            assert statement["Effect"] == "Allow", where
            assert re.fullmatch(r"[A-Za-z0-9]+", statement["Sid"]), where
            for text in as_list(statement["Action"]) + as_list(statement["Resource"]):
                assert "*" not in text and "?" not in text, where
            # And is either checked against the recorded calls or exempt by name, not both
            exempt = (name, statement["Sid"]) in NOT_EXERCISED
            assert exempt != (name in checked), where
            # And the checked ones have no Condition the comparison would ignore
            assert exempt or "Condition" not in statement, where
    # And every exemption names a statement that exists
    for name, sid in NOT_EXERCISED:
        assert sid in {s["Sid"] for s in policy(name)["Statement"]}, (name, sid)


def test_the_comparison_finds_a_call_its_policy_refuses_and_a_grant_never_called(
    tmp_path: Path,
) -> None:
    # Given a recording where the worker purged its queue and never dead-lettered anything
    stack = Stack()
    queue = {"account": stack.queue_url.split("/")[-2], "region": stack.settings().region}
    lines = [
        {"action": action, "queue": stack.queue_name, "app": WORKER_APP} | queue
        for action in (
            "GetQueueAttributes",
            "ReceiveMessage",
            "DeleteMessageBatch",
            "ChangeMessageVisibilityBatch",
            "PurgeQueue",
        )
    ]

    # When it is compared with worker.json
    called, refused, unused = check(stack, lines, (WORKER_APP,), show=False)

    # Then the purge is refused, and the DLQ's two grants are never called
    queue_arn = f"arn:aws:sqs:{queue['region']}:{queue['account']}:{stack.queue_name}"
    assert refused[WORKER_APP] == {("sqs:PurgeQueue", queue_arn)}
    assert unused[WORKER_APP] == {
        ("sqs:GetQueueUrl", f"{queue_arn}-dlq"),
        ("sqs:SendMessage", f"{queue_arn}-dlq"),
    }
    assert ("sqs:DeleteMessage", queue_arn) in called[WORKER_APP]


async def test_the_worker_and_producer_call_exactly_what_their_policies_allow(
    processes: Processes, stack: Stack, tmp_path: Path
) -> None:
    # Given the emulator recording every request, a server, a worker that finds the DLQ from
    # the queue's redrive policy (SQS_DLQ_URL unset) and a client
    record = tmp_path / "sqs-calls.jsonl"
    stack.extra.update({**recording_env(record), "ACK_TIMEOUT_S": "1"})
    processes.sqs(stack)
    server = processes.server(stack)
    worker = processes.worker(stack)
    await wait_log(worker, "Dead-letter queue:")
    client = await RecordingClient().connect(stack.base_url)
    sqs = stack.sqs_client()  # the test's own calls: no app, checked against nothing

    # When the producer sends with its command (SendMessageBatch) and with publish()
    # (SendMessage) on a client marked as the producer's, and the worker delivers both
    await produce_async(stack, "--event", "cli", "--data", "1")
    from producer import publish

    producer = make_sqs_client(stack.settings(), app=PRODUCER_APP)
    await asyncio.to_thread(publish, producer, stack.queue_url, "library", 2)
    await client.wait_for(2)
    await wait_queue_empty_async(sqs, stack.queue_url)

    # And a body the worker can never deliver is dead-lettered
    await produce_async(stack, "--raw", "this is not json")
    await wait_log(worker, "Dead-lettered message")
    await wait_queue_empty_async(sqs, stack.queue_url)

    # And a batch no server confirms within ACK_TIMEOUT_S is returned to the queue
    handed = len(worker.log())
    server.send_signal(signal.SIGSTOP)
    try:
        await produce_async(stack, "--event", "held", "--data", "3")
        await wait_log(worker, "Returned 1 unconfirmed", after=handed)
    finally:
        server.send_signal(signal.SIGCONT)
    await client.wait_for(3)
    await wait_queue_empty_async(sqs, stack.queue_url)
    await client.close()
    assert sorted(e for e, _ in client.events if not e.startswith("relay:")) == [
        "cli",
        "held",
        "library",
    ]

    # Then each called only what its policy allows, and its policy allows nothing it never
    # called
    called, refused, unused = check(stack, recorded(record), (WORKER_APP, PRODUCER_APP))
    assert called[WORKER_APP] and called[PRODUCER_APP]
    assert refused == {WORKER_APP: set(), PRODUCER_APP: set()}
    assert unused == {WORKER_APP: set(), PRODUCER_APP: set()}


async def test_the_server_with_demo_and_consumer_threads_calls_only_what_its_policies_allow(
    processes: Processes, stack: Stack, tmp_path: Path
) -> None:
    # Given the emulator recording every request and a server that consumes in threads of its
    # own (CONSUMER=thread) and serves the demo page
    record = tmp_path / "sqs-calls.jsonl"
    stack.extra.update({**recording_env(record), "CONSUMER": "thread", "DEMO": "true"})
    processes.sqs(stack)
    server = processes.server(stack)
    await asyncio.to_thread(
        wait_until,
        lambda: healthz(stack.base_url)["workers_connected"] >= 1,
        timeout_s=30,
        what="the server's consumer threads",
    )
    client = await RecordingClient().connect(stack.base_url)

    # When the demo page sends an event, which the server's own consumer delivers
    request = urllib.request.Request(
        f"{stack.base_url}/demo/send",
        data=json.dumps({"event": "demo", "data": 1}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with await asyncio.to_thread(urllib.request.urlopen, request, timeout=10) as response:
        assert response.status == 200
    await client.wait_for(1)
    await wait_queue_empty_async(stack.sqs_client(), stack.queue_url)
    await client.close()
    assert server.popen.poll() is None

    # Then the demo's send is the server's, allowed by producer.json and all it allows; the
    # consumer threads' calls are the worker's, each allowed by worker.json
    called, refused, unused = check(stack, recorded(record), (SERVER_APP, WORKER_APP))
    assert called[WORKER_APP]
    assert refused == {SERVER_APP: set(), WORKER_APP: set()}
    assert unused[SERVER_APP] == set()


async def test_the_servers_online_offline_events_call_only_what_their_policy_allows(
    processes: Processes, stack: Stack, tmp_path: Path
) -> None:
    # Given the emulator recording every request, an events queue beside the relay's, and a
    # server that sends online/offline events to it
    record = tmp_path / "sqs-calls.jsonl"
    stack.extra.update(recording_env(record))
    processes.sqs(stack)
    sqs = stack.sqs_client()
    events_url = sqs.create_queue(QueueName=f"{stack.queue_name}-presence")["QueueUrl"]
    processes.server(stack, PRESENCE_EVENTS_QUEUE_URL=events_url, PRESENCE_GRACE_S="0.2")

    # When a user connects, and goes once the backend got its user_online; then its
    # user_offline comes
    bodies: list[dict[str, Any]] = []

    def received(count: int) -> bool:
        reply = sqs.receive_message(QueueUrl=events_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        bodies.extend(json.loads(m["Body"]) for m in reply.get("Messages", []))
        return len(bodies) >= count

    client = await RecordingClient().connect(stack.base_url, auth={"token": token(sub="alice")})
    await asyncio.to_thread(wait_until, lambda: received(1), timeout_s=30, what="user_online")
    await client.close()
    await asyncio.to_thread(wait_until, lambda: received(2), timeout_s=30, what="user_offline")
    assert [b["type"] for b in bodies] == ["user_online", "user_offline"]

    # Then the server's sender called only what presence-events.json allows, and all of it
    called, refused, unused = check(stack, recorded(record), (PRESENCE_APP,))
    assert called[PRESENCE_APP]
    assert refused == {PRESENCE_APP: set()}
    assert unused == {PRESENCE_APP: set()}


def test_a_recorded_request_is_read_in_either_of_sqss_protocols() -> None:
    # Given moto's recording of one JSON-protocol call and one query-protocol call
    queue_url = "http://127.0.0.1:9324/123456789012/push-relay"
    signed = "AWS4-HMAC-SHA256 Credential=testing/20261203/eu-west-1/sqs/aws4_request, ..."
    json_call = {
        "method": "POST",
        "url": "http://127.0.0.1:9324/",
        "headers": {
            "X-Amz-Target": "AmazonSQS.ReceiveMessage",
            "User-Agent": "Boto3/1.43 md/Botocore#1.43 app/sqs-relay-worker cfg/retry-mode#std",
            "Authorization": signed,
        },
        "body": base64.b64encode(json.dumps({"QueueUrl": queue_url}).encode()).decode(),
        "body_encoded": True,
    }
    query_call = {
        "method": "POST",
        "url": "http://127.0.0.1:9324/123456789012/push-relay-dlq",
        "headers": {"User-Agent": "aws-sdk-java/1.12", "Authorization": signed},
        "body": "Action=SendMessage&MessageBody=x",
        "body_encoded": False,
    }
    # Then each names its call, its queue, its region and its caller (None without an app id)
    assert describe(json_call) == {
        "action": "ReceiveMessage", "queue": "push-relay", "account": "123456789012",
        "region": "eu-west-1", "app": WORKER_APP,
    }  # fmt: skip
    assert describe(query_call) == {
        "action": "SendMessage", "queue": "push-relay-dlq", "account": "123456789012",
        "region": "eu-west-1", "app": None,
    }  # fmt: skip
