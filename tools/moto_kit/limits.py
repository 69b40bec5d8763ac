"""DynamoDB's and SQS's limits, which moto 5.2.5 does not enforce.

DynamoDB
- **Partition throughput.** A partition serves at most 1,000 write units or 3,000 read
  units a second (or a mix: a read unit costs a third of a write unit here). Each
  partition key of a table (or index) is one partition, with a one-second bucket. The
  ceiling is scaled by `partition_scale` (environment variable
  `KIT_EMULATOR_PARTITION_SCALE`, 0.1 unless set): a local run capped at 200 calls a
  second meets the ceiling at the same ratio as a production run capped at 2,000 meets
  DynamoDB's. A partition may save up one second of a real partition (1,000 units), so
  one large request passes as it would on DynamoDB. Over it, a write or read is refused with `ThrottlingException` (an
  on-demand table's answer), and a transaction is cancelled with a `ThrottlingError`
  reason for the items on that partition. Units are DynamoDB's: a write 1 per started
  KB of the larger of the old and new item (an update's new item is the old one plus
  the values it sets), a read 1 per started 4 KB (half when eventually consistent), a
  query's items summed before rounding, and twice as much inside a transaction.
  `BatchWriteItem` and `BatchGetItem` are refused whole, where DynamoDB would return
  the throttled items as unprocessed.
- **Transaction conflicts.** A transaction holds its items for `transaction_ms` (10 ms
  unless `KIT_EMULATOR_TRANSACTION_MS` says otherwise) before its answer leaves, as
  DynamoDB's two-phase commit does: another transaction touching one of them meanwhile is
  cancelled with a `TransactionConflict` reason, and a plain write of one gets
  `TransactionConflictException`. The emulator handles DynamoDB requests one at a time
  (fix 3), so without this no two requests would ever overlap.

SQS
- **Retention.** A message older than its queue's `MessageRetentionPeriod` is deleted,
  with no dead letter; a message moved to a dead-letter queue keeps its first enqueue
  time, as on a standard queue. moto kept such messages and let receives count them.
- **Visibility.** A message's visibility may not be extended past 12 hours from its
  receive (moto counted from the send).
- **Delay.** `DelaySeconds` is 0 to 900, on a message and on a queue.
- **Size.** A message's UTF-8 body and its attributes (names, types and values) together
  at most the queue's `MaximumMessageSize` (1 MiB; moto counted the body's characters).
- **Characters.** A body or attribute value with a character outside #x9, #xA, #xD,
  #x20-#xD7FF, #xE000-#xFFFD, #x10000-#x10FFFF is refused with `InvalidMessageContents`
  (per entry in a batch).
- **Clock.** `sqs_clock_offset_seconds` moves SQS's clock forward, so a test can age
  messages past their retention without waiting days.
"""

import base64
import json
import math
import os
import threading
import time

from . import control

_settings = {
    "partition_scale": float(os.environ.get("KIT_EMULATOR_PARTITION_SCALE", "0.1")),
    "transaction_ms": float(os.environ.get("KIT_EMULATOR_TRANSACTION_MS", "10")),
    "sqs_clock_offset_seconds": 0.0,
}
_settings_lock = threading.Lock()

WRITE_UNITS_PER_PARTITION = 1000.0
READ_UNITS_PER_PARTITION = 3000.0

THROTTLED = (
    "Throughput exceeds the current capacity of your table or index. DynamoDB is "
    "automatically scaling your table or index so please try again shortly. If exceptions "
    "persist, check if you have a hot key: "
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html"
)
ONGOING = "Transaction is ongoing for the item"

# Thread-local state of the request being handled (the emulator's request wrapper reads
# `hold_seconds` to keep a transaction's answer back).
request = threading.local()


def settings():
    with _settings_lock:
        return dict(_settings)


def configure(changes):
    if not isinstance(changes, dict):
        raise ValueError("expected a JSON object of limits")
    with _settings_lock:
        for name, value in changes.items():
            if name not in _settings:
                raise ValueError(f"unknown limit `{name}`: known are {', '.join(sorted(_settings))}")
            value = float(value)
            if value < 0 or not math.isfinite(value):
                raise ValueError(f"`{name}` must be a finite number of at least 0")
            _settings[name] = value
    _partitions.clear()


def sqs_now_ms():
    return (time.time() + _settings["sqs_clock_offset_seconds"]) * 1000.0


# ---------------------------------------------------------------------------------------
# DynamoDB


class _Bucket:
    """One partition's capacity, in write units, refilled continuously at the scaled
    rate. It holds one second of a real partition (1,000 units) whatever the scale, so a
    single request is admitted as DynamoDB admits it (a transaction of 100 items needs
    200 units: a fifth of a partition's second, not twice a scaled one), while a
    sustained rate meets the scaled ceiling."""

    __slots__ = ("tokens", "at")

    def __init__(self):
        self.tokens = WRITE_UNITS_PER_PARTITION
        self.at = time.monotonic()

    def refill(self, rate):
        now = time.monotonic()
        self.tokens = min(WRITE_UNITS_PER_PARTITION, self.tokens + (now - self.at) * rate)
        self.at = now


_partitions = {}
# (table, item key) -> monotonic time until which a transaction holds the item.
_held = {}


def _capacity():
    scale = _settings["partition_scale"]
    return WRITE_UNITS_PER_PARTITION * scale if scale > 0 else math.inf


def _bucket(partition):
    bucket = _partitions.get(partition)
    if bucket is None:
        bucket = _partitions[partition] = _Bucket()
    bucket.refill(_capacity())
    return bucket


def _has(partition, units):
    """Whether `partition` can take `units` write units now (reads are a third)."""
    if _capacity() == math.inf:
        return True
    return _bucket(partition).tokens >= min(units, WRITE_UNITS_PER_PARTITION)


def _charge(partition, units):
    if _capacity() != math.inf:
        _bucket(partition).tokens -= units


def _attribute_size(value):
    """DynamoDB's size of an attribute value in JSON form, in bytes (approximately: a
    number as its digits, a list or map with 3 bytes of overhead)."""
    if not isinstance(value, dict) or len(value) != 1:
        return 0
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "N":
        return len(inner)
    if kind == "B":
        try:
            return len(base64.b64decode(inner))
        except (ValueError, TypeError):
            return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS"):
        return sum(len(v.encode("utf-8")) for v in inner)
    if kind == "BS":
        return sum(len(v) for v in inner)
    if kind == "L":
        return 3 + sum(1 + _attribute_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + 1 + _attribute_size(v) for k, v in inner.items())
    return 0


def _item_size(attributes):
    return sum(len(name.encode("utf-8")) + _attribute_size(v) for name, v in (attributes or {}).items())


def _write_units(size):
    return max(1, math.ceil(size / 1024))


def _read_units(size, consistent):
    units = max(1, math.ceil(size / 4096))
    return units if consistent else units / 2


def _key_of(table, attributes):
    key = {table.hash_key_attr: attributes.get(table.hash_key_attr)}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attributes.get(table.range_key_attr)
    return key


def _partition_of(table, key, index=None):
    return (table.name, index, json.dumps(key.get(table.hash_key_attr), sort_keys=True))


def _item_id(table, key):
    return (table.name, json.dumps(key, sort_keys=True))


def _is_held(item_id):
    until = _held.get(item_id)
    if until is None:
        return False
    if until <= time.monotonic():
        del _held[item_id]
        return False
    return True


def _hold(item_ids):
    window = _settings["transaction_ms"] / 1000.0
    if window <= 0 or not item_ids:
        return
    until = time.monotonic() + window
    if len(_held) > 10_000:
        now = time.monotonic()
        for held, end in list(_held.items()):
            if end <= now:
                del _held[held]
    for item_id in item_ids:
        _held[item_id] = until
    request.hold_seconds = window


def _current_size(backend, table, key):
    try:
        item = backend.get_item(table.name, key)
    except Exception:  # an invalid key: moto reports it
        return 0
    return item.size() if item is not None else 0


class _Write:
    """One item write: its table, key, partition and units."""

    __slots__ = ("table", "key", "partition", "units", "item_id")

    def __init__(self, backend, table_name, op, attributes_key, transactional):
        self.table = backend.get_table(table_name)
        if attributes_key == "Item":
            self.key = _key_of(self.table, op.get("Item") or {})
            new = _item_size(op.get("Item"))
        else:
            self.key = op.get("Key") or {}
            new = 0
        old = _current_size(backend, self.table, self.key)
        if attributes_key == "Key+values":
            new = old + sum(_attribute_size(v) for v in (op.get("ExpressionAttributeValues") or {}).values())
        self.partition = _partition_of(self.table, self.key)
        self.units = _write_units(max(old, new)) * (2 if transactional else 1)
        self.item_id = _item_id(self.table, self.key)


def _refuse(signature, kind, error):
    control.count(kind)
    control.refused(signature)
    raise error


def _throttling_exception():
    from moto.dynamodb.exceptions import DynamodbException

    return DynamodbException("com.amazonaws.dynamodb.v20120810#ThrottlingException", THROTTLED)


def _conflict_exception():
    from moto.dynamodb.exceptions import DynamodbException

    return DynamodbException("com.amazonaws.dynamodb.v20120810#TransactionConflictException", ONGOING)


def enforce_dynamodb():
    from moto.dynamodb.exceptions import TransactionCanceledException
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    def single_write(method, attributes_key):
        def handle(self):
            params = self.body
            try:
                write = _Write(self.dynamodb_backend, params.get("TableName", ""), params, attributes_key, False)
            except Exception:  # an unknown table or a bad key: moto answers
                return method(self)
            signature = (self._get_action(), write.item_id)
            control.seen(signature)
            if _is_held(write.item_id):
                _refuse(signature, "conflicted", _conflict_exception())
            if not _has(write.partition, write.units):
                _refuse(signature, "throttled", _throttling_exception())
            result = method(self)
            _charge(write.partition, write.units)
            return result

        return handle

    DynamoHandler.put_item = single_write(DynamoHandler.put_item, "Item")
    DynamoHandler.update_item = single_write(DynamoHandler.update_item, "Key+values")
    DynamoHandler.delete_item = single_write(DynamoHandler.delete_item, "Key")

    transact_write = DynamoHandler.transact_write_items

    def transact_write_items(self):
        ops = []
        try:
            for entry in self.body.get("TransactItems", []):
                ((kind, op),) = entry.items()
                attributes_key = {"Put": "Item", "Update": "Key+values"}.get(kind, "Key")
                ops.append(_Write(self.dynamodb_backend, op.get("TableName", ""), op, attributes_key, True))
        except Exception:  # moto validates the request and answers
            return transact_write(self)
        signature = ("TransactWriteItems", tuple(sorted(w.item_id for w in ops)))
        control.seen(signature)
        if any(_is_held(w.item_id) for w in ops):
            reasons = [("TransactionConflict", ONGOING, None) if _is_held(w.item_id) else (None, None, None) for w in ops]
            _refuse(signature, "conflicted", TransactionCanceledException(reasons))
        needs = {}
        for w in ops:
            needs[w.partition] = needs.get(w.partition, 0) + w.units
        short = {p for p, units in needs.items() if not _has(p, units)}
        if short:
            reasons = [("ThrottlingError", THROTTLED, None) if w.partition in short else (None, None, None) for w in ops]
            _refuse(signature, "throttled", TransactionCanceledException(reasons))
        result = transact_write(self)
        for partition, units in needs.items():
            _charge(partition, units)
        _hold([w.item_id for w in ops])
        return result

    DynamoHandler.transact_write_items = transact_write_items

    def single_read(method):
        def handle(self):
            params = self.body
            try:
                table = self.dynamodb_backend.get_table(params.get("TableName", ""))
                key = params.get("Key") or {}
                partition = _partition_of(table, key)
            except Exception:
                return method(self)
            signature = ("GetItem", _item_id(table, key))
            control.seen(signature)
            if not _has(partition, 1 / 6):
                _refuse(signature, "throttled", _throttling_exception())
            size = _current_size(self.dynamodb_backend, table, key)
            result = method(self)
            _charge(partition, _read_units(size, bool(params.get("ConsistentRead"))) / 3)
            return result

        return handle

    DynamoHandler.get_item = single_read(DynamoHandler.get_item)

    transact_get = DynamoHandler.transact_get_items

    def transact_get_items(self):
        reads = []
        try:
            for entry in self.body.get("TransactItems", []):
                op = entry["Get"]
                table = self.dynamodb_backend.get_table(op.get("TableName", ""))
                key = op.get("Key") or {}
                size = _current_size(self.dynamodb_backend, table, key)
                reads.append((_partition_of(table, key), _item_id(table, key), 2 * _read_units(size, True) / 3))
        except Exception:
            return transact_get(self)
        signature = ("TransactGetItems", tuple(sorted(i for _, i, _ in reads)))
        control.seen(signature)
        if any(_is_held(item_id) for _, item_id, _ in reads):
            reasons = [("TransactionConflict", ONGOING, None) if _is_held(i) else (None, None, None) for _, i, _ in reads]
            _refuse(signature, "conflicted", TransactionCanceledException(reasons))
        if any(not _has(p, u) for p, _, u in reads):
            reasons = [("ThrottlingError", THROTTLED, None) if not _has(p, u) else (None, None, None) for p, _, u in reads]
            _refuse(signature, "throttled", TransactionCanceledException(reasons))
        result = transact_get(self)
        for partition, _, units in reads:
            _charge(partition, units)
        return result

    DynamoHandler.transact_get_items = transact_get_items

    def batch(method, writes):
        def handle(self):
            charges = []
            try:
                for table_name, entries in (self.body.get("RequestItems") or {}).items():
                    table = self.dynamodb_backend.get_table(table_name)
                    if writes:
                        for entry in entries:
                            ((kind, op),) = entry.items()
                            attributes_key = "Item" if kind == "PutRequest" else "Key"
                            w = _Write(self.dynamodb_backend, table_name, op, attributes_key, False)
                            charges.append((w.partition, w.units))
                    else:
                        consistent = bool(entries.get("ConsistentRead"))
                        for key in entries.get("Keys", []):
                            size = _current_size(self.dynamodb_backend, table, key)
                            charges.append((_partition_of(table, key), _read_units(size, consistent) / 3))
            except Exception:
                return method(self)
            signature = ("Batch", writes, tuple(sorted(str(p) for p, _ in charges)))
            control.seen(signature)
            if any(not _has(p, u) for p, u in charges):
                _refuse(signature, "throttled", _throttling_exception())
            result = method(self)
            for partition, units in charges:
                _charge(partition, units)
            return result

        return handle

    DynamoHandler.batch_write_item = batch(DynamoHandler.batch_write_item, True)
    DynamoHandler.batch_get_item = batch(DynamoHandler.batch_get_item, False)

    # Queries are charged where their items are read: the table's own query (the
    # emulator's partition query, or moto's for what it leaves to moto).
    query = Table.query

    def charged_query(self, hash_key, *args, **kwargs):
        index_name = kwargs.get("index_name") if "index_name" in kwargs else (args[6] if len(args) > 6 else None)
        consistent = kwargs.get("consistent_read") if "consistent_read" in kwargs else (args[7] if len(args) > 7 else False)
        partition = (self.name, index_name, json.dumps(hash_key.to_json() if hash_key is not None else None, sort_keys=True))
        handler = getattr(request, "handler", None)
        signature = ("Query", partition, getattr(handler, "raw_body", None))
        control.seen(signature)
        if not _has(partition, 1 / 6):
            _refuse(signature, "throttled", _throttling_exception())
        results, scanned, last = query(self, hash_key, *args, **kwargs)
        read = getattr(request, "query_read_bytes", None)
        size = read if read is not None else sum(item.size() for item in results)
        request.query_read_bytes = None
        _charge(partition, _read_units(size, bool(consistent)) / 3)
        return results, scanned, last

    Table.query = charged_query

    query_handler = DynamoHandler.query

    def query_with_handler(self):
        request.handler = self
        try:
            return query_handler(self)
        finally:
            request.handler = None

    DynamoHandler.query = query_with_handler


# ---------------------------------------------------------------------------------------
# SQS

MAX_DELAY_SECONDS = 900
MAX_VISIBILITY_SECONDS = 43_200
RETENTION_RANGE = (60, 1_209_600)


def _allowed(character):
    c = ord(character)
    return (
        c in (0x9, 0xA, 0xD)
        or 0x20 <= c <= 0xD7FF
        or 0xE000 <= c <= 0xFFFD
        or 0x10000 <= c <= 0x10FFFF
    )


def first_disallowed(text):
    """The first character SQS does not carry in `text`, or None."""
    for character in text or "":
        if not _allowed(character):
            return character
    return None


def invalid_contents_message(character):
    return (
        f"Invalid binary character '#x{ord(character):X}' was found in the message body, the set "
        "of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | "
        "#x10000 to #x10FFFF"
    )


def message_bytes(body, attributes):
    size = len((body or "").encode("utf-8"))
    for name, attribute in (attributes or {}).items():
        size += len(name.encode("utf-8"))
        size += len((attribute.get("data_type") or attribute.get("DataType") or "").encode("utf-8"))
        value = attribute.get("string_value") or attribute.get("StringValue")
        if value is not None:
            size += len(value.encode("utf-8"))
        binary = attribute.get("binary_value") or attribute.get("BinaryValue")
        if binary is not None:
            size += len(binary) if isinstance(binary, (bytes, bytearray)) else len(base64.b64decode(binary))
    return size


def _attribute_texts(attributes):
    for attribute in (attributes or {}).values():
        value = attribute.get("string_value") or attribute.get("StringValue")
        if value is not None:
            yield value


def expire(queue):
    """Deletes the messages of `queue` older than its retention; call it holding the
    queue's lock. Returns the number deleted."""
    retention_ms = int(queue.message_retention_period) * 1000
    cutoff = sqs_now_ms() - retention_ms
    if not any(m.sent_timestamp <= cutoff for m in queue._messages):
        return 0
    kept = [m for m in queue._messages if m.sent_timestamp > cutoff]
    gone = [m for m in queue._messages if m.sent_timestamp <= cutoff]
    for message in gone:
        queue.pending_messages.discard(message)
        for handle in getattr(message, "all_receipt_handles", []) or []:
            _forget_handle(handle)
    queue._messages = kept
    control.count("expired", len(gone))
    return len(gone)


_forget_handle = lambda handle: None  # noqa: E731  (set by the emulator's fix 8)


def set_handle_forgetter(forget):
    global _forget_handle
    _forget_handle = forget


def enforce_sqs():
    from moto.sqs.exceptions import InvalidAttributeValue, InvalidParameterValue
    from moto.sqs.models import Queue, SQSBackend

    set_attributes = Queue._set_attributes

    def checked_attributes(self, attributes, *args, **kwargs):
        delay = attributes.get("DelaySeconds")
        if delay is not None and not 0 <= int(delay) <= MAX_DELAY_SECONDS:
            control.count("refused")
            raise InvalidAttributeValue("DelaySeconds")
        retention = attributes.get("MessageRetentionPeriod")
        if retention is not None and not RETENTION_RANGE[0] <= int(retention) <= RETENTION_RANGE[1]:
            control.count("refused")
            raise InvalidAttributeValue("MessageRetentionPeriod")
        return set_attributes(self, attributes, *args, **kwargs)

    Queue._set_attributes = checked_attributes

    def check_message(queue, body, attributes, delay_seconds):
        if delay_seconds is not None and int(delay_seconds) < 0:
            raise InvalidParameterValue(
                f"Value {delay_seconds} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900."
            )
        for text in (body, *_attribute_texts(attributes)):
            bad = first_disallowed(text)
            if bad is not None:
                from moto.sqs.exceptions import SQSException

                raise SQSException("InvalidMessageContents", invalid_contents_message(bad))
        limit = int(queue.maximum_message_size)
        if message_bytes(body, attributes) > limit:
            raise InvalidParameterValue(
                f"One or more parameters are invalid. Reason: Message must be shorter than {limit} bytes."
            )

    send = SQSBackend.send_message

    def send_message(self, queue_name, message_body, message_attributes=None, delay_seconds=None, *args, **kwargs):
        queue = self.get_queue(queue_name)
        try:
            check_message(queue, message_body, message_attributes, delay_seconds)
        except Exception:
            control.count("refused")
            raise
        return send(self, queue_name, message_body, message_attributes, delay_seconds, *args, **kwargs)

    SQSBackend.send_message = send_message

    send_batch = SQSBackend.send_message_batch

    def send_message_batch(self, queue_name, entries):
        queue = self.get_queue(queue_name)
        total = sum(
            message_bytes(e.get("MessageBody"), e.get("MessageAttributes")) for e in entries.values()
        )
        limit = int(queue.maximum_message_size)
        if total > limit:
            from moto.sqs.exceptions import BatchRequestTooLong

            control.count("refused")
            raise BatchRequestTooLong(total)
        failed = []
        kept = {}
        for key, entry in entries.items():
            try:
                check_message(queue, entry.get("MessageBody"), entry.get("MessageAttributes"), entry.get("DelaySeconds"))
            except Exception as error:
                control.count("refused")
                failed.append(
                    {
                        "Id": entry.get("Id", key),
                        "SenderFault": True,
                        "Code": getattr(error, "code", None) or type(error).__name__,
                        "Message": getattr(error, "message", None) or str(error),
                    }
                )
                continue
            kept[key] = entry
        if not kept:
            return [], failed
        messages, moto_failed = send_batch(self, queue_name, kept)
        return messages, list(moto_failed) + failed

    SQSBackend.send_message_batch = send_message_batch
