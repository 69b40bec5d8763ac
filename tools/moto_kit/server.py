"""How the emulator serves requests (fixes 3 and 9 of `tools/emulator.py`): DynamoDB one
request at a time, a transaction's answer held back while its items are held
(`limits`), form bodies kept as they arrived (`iam`), the emulator's own `/_kit/`
endpoint (`control`), each host's backend remembered, and only server errors logged."""

import io
import threading
import time

from . import control, iam, limits

# SQS actions whose answers carry no message counts (JSON protocol targets).
_SQS_MESSAGE_ACTIONS = frozenset(
    f"AmazonSQS.{action}"
    for action in (
        "SendMessage",
        "SendMessageBatch",
        "ReceiveMessage",
        "DeleteMessage",
        "DeleteMessageBatch",
        "ChangeMessageVisibility",
        "ChangeMessageVisibilityBatch",
    )
)
_dynamodb_lock = threading.Lock()
_request = threading.local()


def _wrap_requests():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    dispatch = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        if control.handles(environ.get("PATH_INFO", "")):
            return control.answer(environ, start_response)
        # Queue attributes computed during this request (fix 5).
        _request.queue_attributes = {}
        _request.message_action = (
            environ.get("HTTP_X_AMZ_TARGET", "") in _SQS_MESSAGE_ACTIONS
        )
        try:
            iam.keep_arrived_body(None)
            if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
                # Its signature is checked over the bytes that arrived (moto_kit.iam).
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = environ["wsgi.input"].read(length) if length else b""
                environ["wsgi.input"] = io.BytesIO(body)
                iam.keep_arrived_body(body)
            if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
                return dispatch(self, environ, start_response)
            # The whole request, body included, is handled under the lock (fix 3).
            limits.request.hold_seconds = 0
            with _dynamodb_lock:
                body = dispatch(self, environ, start_response)
                try:
                    answer = [b"".join(body)]
                finally:
                    getattr(body, "close", lambda: None)()
            # A transaction's items stay held while its answer is on its way (limits).
            if limits.request.hold_seconds:
                time.sleep(limits.request.hold_seconds)
            return answer
        finally:
            _request.queue_attributes = None
            _request.message_action = False

    DomainDispatcherApplication.__call__ = call

    # The backend of a host: moto lists its own package directory and tries every
    # service's URL patterns for each request, under one lock shared by all requests.
    # The answer depends on the host only (fix 9).
    backend_for_host = DomainDispatcherApplication.get_backend_for_host
    known = {}

    def get_backend_for_host(self, host):
        if host not in known:
            known[host] = backend_for_host(self, host)
        return known[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host

    # One access-log line per request (`"POST / HTTP/1.1" 200 -`: every AWS call looks
    # alike) went through the logging lock and a colour wrapper of stderr. Server
    # errors are still logged, with moto's tracebacks (fix 9).
    from werkzeug.serving import WSGIRequestHandler

    log_request = WSGIRequestHandler.log_request

    def log_server_errors(self, code="-", size="-"):
        if str(code).startswith("5"):
            log_request(self, code, size)

    WSGIRequestHandler.log_request = log_server_errors
    # The headers and the body of an answer are two writes; with Nagle's algorithm the
    # body waits for the client's delayed acknowledgement of the headers (40 ms).
    WSGIRequestHandler.disable_nagle_algorithm = True


def install():
    _wrap_requests()
