"""The emulator's own endpoint, beside AWS's: `/_kit/...` on the same port.

- `GET /_kit/stats`: what the stricter world did so far, as JSON: `denied` (each denied
  request's principal, action and resource), `throttled`, `conflicted`, `refused` (SQS
  messages refused for their size or characters, and other limit refusals), `expired`
  (SQS messages deleted at their queue's retention) and `retried` (requests sent again
  after a throttle or a conflict: the same action on the same items), plus the limits in
  force.
- `POST /_kit/reset-stats`: sets the counters back to zero.
- `POST /_kit/limits`: a JSON object changing the limits in force (keys as in `stats`).

It needs no credentials: it tells what happened and changes no AWS state.
"""

import json
import threading

from . import iam, limits

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


def answer(environ, start_response):
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    status, body = "404 Not Found", {"error": f"no such emulator endpoint: {method} {path}"}
    if path == "/_kit/stats" and method == "GET":
        status, body = "200 OK", stats()
    elif path == "/_kit/reset-stats" and method == "POST":
        reset()
        status, body = "200 OK", stats()
    elif path == "/_kit/limits" and method == "POST":
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            changes = json.loads(environ["wsgi.input"].read(length) or b"{}")
            limits.configure(changes)
            status, body = "200 OK", limits.settings()
        except (ValueError, TypeError, KeyError) as error:
            status, body = "400 Bad Request", {"error": str(error)}
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
