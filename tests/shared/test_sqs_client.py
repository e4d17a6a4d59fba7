"""The boto3 clients the relay's parts build (shared/sqs.py): the worker's, on the hot path,
leaves checking a request's parameters to SQS; every other part's keeps botocore's check."""

from __future__ import annotations

import pytest
from botocore.exceptions import ParamValidationError
from botocore.stub import Stubber

from shared.settings import load_settings
from shared.sqs import PRODUCER_APP, SERVER_APP, WORKER_APP, make_sqs_client

SETTINGS = load_settings({"SQS_QUEUE_URL": "http://127.0.0.1:9324/123456789012/orders"})


def test_the_worker_client_skips_botocore_parameter_checks() -> None:
    sqs = make_sqs_client(SETTINGS, app=WORKER_APP)
    with Stubber(sqs) as stub:  # answers in place of SQS, after the request is built
        stub.add_response("receive_message", {"Messages": []})
        response = sqs.receive_message(QueueUrl=SETTINGS.sqs_queue_url, MaxNumberOfMessages="ten")  # type: ignore[arg-type]
    assert response["Messages"] == []


@pytest.mark.parametrize("app", [PRODUCER_APP, SERVER_APP, None])
def test_every_other_client_refuses_a_bad_parameter_before_calling(app: str | None) -> None:
    sqs = make_sqs_client(SETTINGS, app=app)
    with pytest.raises(ParamValidationError, match="MaxNumberOfMessages"):
        sqs.receive_message(QueueUrl=SETTINGS.sqs_queue_url, MaxNumberOfMessages="ten")  # type: ignore[arg-type]
