"""Which SQS call each recorded request was, from moto's own recorder.

moto's server records every request it serves when started with `MOTO_ENABLE_RECORDING=true`
and `MOTO_RECORDER_FILEPATH=<file>` (moto's documented Recorder, for replaying a session):
one JSON object per line with the request's method, raw URL, headers and body (base64 when
`body_encoded`). `describe` turns one into the call it made: SQS's JSON protocol
(``X-Amz-Target: AmazonSQS.ReceiveMessage``, what boto3 speaks) or its query protocol (a form
with ``Action=``, what older SDKs send), the queue it acts on, the region it was signed for,
and the caller: the `app/<id>` of its User-Agent (botocore's `user_agent_appid`, which
shared.sqs.make_sqs_client sets for each part of the relay).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


#: The emulator's environment that turns moto's recorder on, writing to `path`.
def recording_env(path: Path) -> dict[str, str]:
    return {"MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(path)}


_JSON_TARGET = "AmazonSQS."
_APP = re.compile(r"(?:^|\s)app/(\S+)")
_REGION = re.compile(r"Credential=[^/]*/\d{8}/([^/]+)/")


def describe(entry: dict[str, Any]) -> dict[str, str | None]:
    """{action, queue, account, region, app} of one entry of moto's recording."""
    headers = {name.lower(): value for name, value in entry.get("headers", {}).items()}
    raw = entry.get("body") or ""
    body = base64.b64decode(raw) if entry.get("body_encoded") else raw.encode()
    url = urlsplit(entry.get("url", ""))
    target = headers.get("x-amz-target", "")
    params: dict[str, Any]
    if target.startswith(_JSON_TARGET):
        action: str | None = target.removeprefix(_JSON_TARGET)
        try:
            decoded = json.loads(body or b"{}")
        except ValueError:
            decoded = {}
        params = decoded if isinstance(decoded, dict) else {}
    else:
        form = parse_qs(url.query) | parse_qs(body.decode("utf-8", "replace"))
        params = {name: values[0] for name, values in form.items()}
        action = params.get("Action")
    account, queue = _queue(params, url.path)
    agent = _APP.search(headers.get("user-agent", ""))
    region = _REGION.search(headers.get("authorization", ""))
    return {
        "action": action,
        "queue": queue,
        "account": account,
        "region": region.group(1) if region else None,
        "app": agent.group(1) if agent else None,
    }


def _queue(params: dict[str, Any], path: str) -> tuple[str | None, str | None]:
    """(account, queue name) the request acts on; (None, None) where none (ListQueues)."""
    url = params.get("QueueUrl")
    if isinstance(url, str) and url:
        path = urlsplit(url).path
    elif isinstance(name := params.get("QueueName"), str) and name:
        owner = params.get("QueueOwnerAWSAccountId")
        return (owner if isinstance(owner, str) else None), name
    parts = [part for part in path.split("/") if part]
    if len(parts) == 2:  # /<account>/<queue>: a QueueUrl, or the query protocol's path
        return parts[0], parts[1]
    return None, None


def recorded(path: Path) -> list[dict[str, str | None]]:
    """Every SQS call in moto's recording at `path` (moto's own /moto-api/ calls left out)."""
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [describe(e) for e in entries if "/moto-api/" not in e.get("url", "")]
