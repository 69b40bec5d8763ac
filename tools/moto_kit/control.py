"""The emulator's own endpoint, beside AWS's: `/_kit/...` on the same port.

- `GET /_kit/stats`: what the stricter world did so far, as JSON: `denied` (each denied
  request's principal, action and resource), `throttled`, `conflicted`, `refused` (SQS
  messages refused for their size or characters, and other limit refusals), `expired`
  (SQS messages deleted at their queue's retention) and `retried` (requests sent again
  after a throttle or a conflict: the same action on the same items), plus the limits in
  force.
- `POST /_kit/reset-stats`: sets the counters back to zero.
- `POST /_kit/limits`: a JSON object changing the limits in force (keys as in `stats`).
- `POST /_kit/faults`: arms a CloudFormation resource failure (`faults`), with the JSON
  `{"stack": "<stack name>", "resource": "<logical id>", "on": "create" | "update" |
  "delete", "times": 1}` (`times` optional, 1 unless given): the next `times` times
  CloudFormation creates, updates or deletes that resource of that stack (in a change
  set, a rollback, a cleanup or a stack deletion), it fails with the reason `Resource
  handler returned message: "failed on request (emulator fault)"`. With
  `"on": "delete", "late_object": "<key>"` instead, nothing fails: an object with that key
  is put into the bucket just before CloudFormation deletes it. Answers `{"armed":
  <the fault>, "faults": [<every armed fault>]}`.
- `GET /_kit/faults`: `{"faults": [...]}`, each with the `times` it has left.
- `POST /_kit/faults/clear`: disarms them all; answers `{"faults": []}`.
- `POST /_kit/confirm-subscriptions`: confirms the pending SNS e-mail subscriptions, as
  their recipients would (`sns_subscriptions`); an optional JSON `{"topic_arn": "..."}`
  confirms only that topic's. Answers `{"confirmed": [<subscription ARNs>]}`.

A body that is not the JSON an endpoint takes is answered 400 with `{"error": "..."}`.
It needs no credentials: it tells what happened, and changes no AWS state but for the
faults it arms (which act only when CloudFormation gets to them) and the confirmations.
"""

import json
import threading

from . import faults, iam, limits, sns_subscriptions

_lock = threading.Lock()
_counts = {"throttled": 0, "conflicted": 0, "refused": 0, "expired": 0, "retried": 0}
# What throttled or conflicted requests touched (their action and items), to count the
# request that comes back for the same items as a retry: the kit's own retries build a
# new request body (new timestamps), the SDK's resend the same one.
_refused = {}
_MAX_REFUSED = 10_000


def count(name, n=1):
    with _lock:
        _counts[name] += n


def refused(signature):
    """Remembers a throttled or conflicted request, so its retry is counted."""
    with _lock:
        _refused[signature] = True
        while len(_refused) > _MAX_REFUSED:
            _refused.pop(next(iter(_refused)))


def seen(signature):
    """Counts a request as a retry when one for the same items was refused before."""
    with _lock:
        if _refused.pop(signature, None):
            _counts["retried"] += 1


def stats():
    with _lock:
        counts = dict(_counts)
    return {
        "denied": iam.denials(),
        **counts,
        "limits": limits.settings(),
    }


def reset():
    with _lock:
        for name in _counts:
            _counts[name] = 0
        _refused.clear()
    iam.forget_denials()


def handles(path):
    return path.startswith("/_kit/")


def _json_body(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    try:
        return json.loads(environ["wsgi.input"].read(length) or b"{}")
    except ValueError as error:
        raise ValueError(f"the body is not JSON: {error}") from None


def _limits(request):
    limits.configure(request)
    return limits.settings()


def _confirm(request):
    if not isinstance(request, dict) or not isinstance(request.get("topic_arn", ""), str):
        raise ValueError("expected a JSON object, with an optional string `topic_arn`")
    return {"confirmed": sns_subscriptions.confirm(request.get("topic_arn"))}


def _arm(request):
    armed = faults.arm(request)
    return {"armed": armed, "faults": faults.listing()}


def _clear():
    faults.clear()
    return {"faults": []}


# Endpoints that take a JSON body: what each does with it.
_POSTS = {
    "/_kit/limits": _limits,
    "/_kit/faults": _arm,
    "/_kit/faults/clear": lambda request: _clear(),
    "/_kit/confirm-subscriptions": _confirm,
}


def answer(environ, start_response):
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    status, body = "404 Not Found", {"error": f"no such emulator endpoint: {method} {path}"}
    if path == "/_kit/stats" and method == "GET":
        status, body = "200 OK", stats()
    elif path == "/_kit/reset-stats" and method == "POST":
        reset()
        status, body = "200 OK", stats()
    elif path == "/_kit/faults" and method == "GET":
        status, body = "200 OK", {"faults": faults.listing()}
    elif path in _POSTS and method == "POST":
        try:
            status, body = "200 OK", _POSTS[path](_json_body(environ))
        except (ValueError, TypeError, KeyError) as error:
            status, body = "400 Bad Request", {"error": str(error)}
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
