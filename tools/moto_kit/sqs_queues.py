"""moto's SQS made safe and fast enough for the pipeline (fixes 5, 6 and 8 of
`tools/emulator.py`): queue attributes computed once per request, deletes, receives and
visibility changes under the queue's lock, messages found by receipt handle; and the
places where SQS's retention and 12-hour visibility window are enforced (`limits`)."""

import copy
import datetime

from . import limits
from .server import _request

# The queue attributes that count messages, one scan of the queue each.
_MESSAGE_COUNTS = frozenset(
    (
        "approximate_number_of_messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
    )
)


class _QueueWithoutCounts:
    """A queue as moto's `attributes` reads it, with the message counts left out."""

    __slots__ = ("queue",)

    def __init__(self, queue):
        self.queue = queue

    def __getattr__(self, name):
        if name in _MESSAGE_COUNTS:
            return None
        return getattr(self.queue, name)


def _queue_attributes_once_per_request():
    from moto.sqs.models import Queue

    compute = Queue.attributes.fget

    def compute_for_request(queue):
        if not getattr(_request, "message_action", False):
            # Expired messages are gone before they are counted (limits).
            with queue._messages_lock:
                limits.expire(queue)
            return compute(queue)
        # A send, receive, delete or visibility change reads a setting or two
        # (ContentBasedDeduplication, MessageRetentionPeriod), never a count.
        attributes = compute(_QueueWithoutCounts(queue))
        for name in (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesDelayed",
            "ApproximateNumberOfMessagesNotVisible",
        ):
            attributes.pop(name, None)
        return attributes

    def attributes(self):
        cache = getattr(_request, "queue_attributes", None)
        if cache is None:
            return compute(self)
        if id(self) not in cache:
            cache[id(self)] = compute_for_request(self)
        return dict(cache[id(self)])

    Queue.attributes = property(attributes)

    from moto.sqs import models as sqs

    def unix_time_millis(dt=None):
        # moto's version builds two datetimes per call, once per message per scan. The
        # clock may be moved forward for tests (limits: `sqs_clock_offset_seconds`).
        if dt is None:
            return limits.sqs_now_ms()
        return (dt - datetime.datetime(1970, 1, 1)).total_seconds() * 1000.0

    sqs.unix_time_millis = unix_time_millis


# Every receipt handle moto has given out, to its message (fix 8).
_messages_by_handle = {}


def _messages_by_receipt_handle():
    from moto.sqs import models as sqs
    from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid
    from moto.sqs.models import Message, Queue, SQSBackend

    mark_received = Message.mark_received

    def message_received(self, visibility_timeout=None):
        mark_received(self, visibility_timeout)
        # The 12 hours of visibility a receive allows count from here (limits).
        self.kit_received_ms = sqs.unix_time_millis()
        _messages_by_handle[self.receipt_handle] = self

    limits.set_handle_forgetter(lambda handle: _messages_by_handle.pop(handle, None))

    def message_with_handle(queue, receipt_handle):
        # moto looks for a message of the queue that ever had the handle: only the one
        # it was given to can have it, and only while it is still on this queue.
        message = _messages_by_handle.get(receipt_handle)
        if message is None or message not in queue._messages:
            return None
        return message

    def delete_message(self, receipt_handle):
        with self._messages_lock:
            if receipt_handle in self.deleted_messages:
                return
            message = message_with_handle(self, receipt_handle)
            if message is None:
                raise ReceiptHandleIsInvalid()
            # A new list, as moto makes: a scan of the old one is never cut short.
            remaining = list(self._messages)
            remaining.remove(message)
            self.pending_messages.discard(message)
            self.deleted_messages.update(message.all_receipt_handles)
            for handle in message.all_receipt_handles:
                _messages_by_handle.pop(handle, None)
            self._messages = remaining

    def change_message_visibility(self, queue_name, receipt_handle, visibility_timeout):
        queue = self.get_queue(queue_name)
        with queue._messages_lock:
            message = message_with_handle(queue, receipt_handle)
            if message is None:
                raise ReceiptHandleIsInvalid
            visibility_timeout_msec = int(visibility_timeout) * 1000
            given_visibility_timeout = sqs.unix_time_millis() + visibility_timeout_msec
            # SQS counts the 12 hours from the receive; moto counted from the send.
            received = getattr(message, "kit_received_ms", message.sent_timestamp)
            if (given_visibility_timeout - received) // 1000 > limits.MAX_VISIBILITY_SECONDS:
                raise InvalidParameterValue(
                    f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: Total "
                    "VisibilityTimeout for the message is beyond the limit [43200 seconds]"
                )
            message.change_visibility(visibility_timeout)
            if message.visible and message in queue.pending_messages:
                queue.pending_messages.remove(message)

    def receive_message(
        self,
        queue_name,
        count,
        wait_seconds_timeout,
        visibility_timeout,
        message_attribute_names=None,
    ):
        # moto's receive, with two changes: it holds the queue's lock (released while it
        # waits for messages), so a message cannot be received while it is deleted, and
        # it looks at the queue's messages one by one until it has `count`, instead of
        # first listing every visible one.
        if message_attribute_names is None:
            message_attribute_names = []
        queue = self.get_queue(queue_name)
        result = []
        previous_result_count = len(result)
        polling_end = sqs.unix_time() + wait_seconds_timeout
        with queue._messages_lock:
            currently_pending_groups = copy.deepcopy(queue.pending_message_groups)
            while True:
                if result or (wait_seconds_timeout and sqs.unix_time() > polling_end):
                    break
                # Messages past the queue's retention are deleted first (limits).
                limits.expire(queue)
                messages_to_dlq = []
                visible = (m for m in queue._messages if m.visible and not m.delayed)
                for message in visible:
                    if message in queue.pending_messages:
                        # Pending but visible again: its consumer timed out.
                        queue.pending_messages.remove(message)
                        currently_pending_groups = copy.deepcopy(
                            queue.pending_message_groups
                        )
                    if message.group_id and queue.fifo_queue:
                        if message.group_id in currently_pending_groups:
                            continue
                    if (
                        queue.dead_letter_queue is not None
                        and queue.redrive_policy
                        and message.approximate_receive_count
                        >= queue.redrive_policy["maxReceiveCount"]
                    ):
                        messages_to_dlq.append(message)
                        continue
                    queue.pending_messages.add(message)
                    message.mark_received(visibility_timeout=visibility_timeout)
                    message_copy = copy.deepcopy(message)
                    sqs._filter_message_attributes(message_copy, message_attribute_names)
                    result.append(message_copy)
                    if len(result) >= count:
                        break
                if messages_to_dlq:
                    remaining = [m for m in queue._messages if m not in messages_to_dlq]
                    queue._messages = remaining
                    for message in messages_to_dlq:
                        queue.dead_letter_queue.add_message(message)
                if previous_result_count == len(result):
                    if wait_seconds_timeout == 0:
                        break
                    queue.wait_for_messages(1)
                    continue
                previous_result_count = len(result)
        return result

    Message.mark_received = message_received
    Queue.delete_message = delete_message
    SQSBackend.change_message_visibility = change_message_visibility
    SQSBackend.receive_message = receive_message


def install():
    _queue_attributes_once_per_request()
    _messages_by_receipt_handle()
