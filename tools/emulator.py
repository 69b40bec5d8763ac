"""The local AWS emulator: moto server with what the kit's deploy needs of CloudFormation.

Run with the project's .venv Python and moto_server's own arguments:

    .venv/bin/python tools/emulator.py -H 127.0.0.1 -p 5000

moto 5.2.5 (pinned in tools/requirements.txt) gets two things wrong that `microprocess
deploy` relies on, and misses one resource type the core stack holds. Each fix below runs
moto's own code at the point moto forgets to:

1. A stack made or updated through a change set keeps the outputs, parameters, tags and
   description it had before (none, for a new stack): ExecuteChangeSet applies the
   template's resources but never rebuilds the stack's output map. Later stacks read
   their parameters from those outputs, and the next change set compares against those
   parameters.
2. `AWS::SecretsManager::Secret` is accepted in a template but not created, so the
   signing secret would not exist and its `Ref` (the secret's ARN, a core output) would
   be missing. It is created here through moto's own Secrets Manager backend,
   `GenerateSecretString` included, and deleted with its stack.
3. DynamoDB requests are handled one at a time. moto's threaded server checks a write's
   condition and applies the write as two steps, so two concurrent `UpdateItem`s guarded
   by the same condition can both succeed (seen: about 1 round in 100 with 8 concurrent
   writers), and concurrent `TransactWriteItems` fail with "dictionary changed size
   during iteration". DynamoDB makes each item's conditional write atomic, and the
   ledger's exactly-once counting rests on that; one lock around DynamoDB gives it back
   (stronger than DynamoDB across items, which the ledger does not rely on). Other
   services stay concurrent, so SQS long polls do not hold anything up.
4. `TransactWriteItems` backs up the whole table, once per item of the transaction, with
   `copy.deepcopy` before it writes, so its cost grows with the table: a batch of ten
   children took seconds once the ledger held a few thousand, and the forwarders timed
   out. Only the items the transaction touches are backed up and restored here; the
   writes, their conditions and the cancellation reasons are moto's own.
5. An SQS queue's attributes, message counts included (a scan of every message each),
   are computed again for every message a `SendMessageBatch` or `ReceiveMessage`
   handles, and for every name a `GetQueueAttributes` asks for: quadratic in the queue's
   depth, so a split of 10,000 items slowed the whole emulator to a few requests a
   second. They are computed once per request here, without the counts for the message
   actions (send, receive, delete, visibility), whose answers carry none; and the clock
   each message's visibility is checked against is read with `time.time()` rather than
   through two datetime conversions.
6. SQS `DeleteMessage` rebuilds the queue's message list without the lock that
   `SendMessage` appends under, so a message sent during a delete was dropped (seen: 18
   of 5,000 children lost in a chaos run), and two deletes at once could bring a deleted
   message back. Deletes take the queue's lock here, and so do receives and visibility
   changes (a receive let go of the lock only while it waits for messages), so a message
   cannot be handed out while it is being deleted.
7. A `Query` on the table's own key sorts every item of the table (then every item of the
   partition) and walks the partition from its first key, so each read of a run slowed
   as the run's children grew (a page of 100 children: 23 ms at 1,000 children, 504 ms
   at 50,000). Each partition here also keeps its range keys in order, maintained on
   every write, and a query bisects to its key condition and `ExclusiveStartKey` and
   reads only the page it returns. Limit, the 1 MB page, ScanIndexForward, the filter,
   the projection and LastEvaluatedKey follow moto's loop exactly (checked against it on
   random partitions and queries); index queries and legacy `QueryFilter`s stay moto's.
8. A delete or a visibility change looks for its receipt handle in every message of the
   queue, and a receive lists every visible message to take ten: three scans of the
   queue per message handled, so a run slowed as its queue grew. Here each receipt
   handle moto gives out is remembered with its message, and a receive takes messages
   in order until it has enough; which message is found, deleted, received or moved to
   the dead-letter queue, and every error, are moto's.
9. Per request, moto's dispatcher lists its own package directory and tries the URL
   patterns of every service to find the backend, under a lock all requests share, and
   werkzeug logs an access line through a colour wrapper of stderr. The backend of a
   host is remembered here, and only server errors are logged.
10. moto writes each DynamoDB `AttributeValue` of an answer by asking it for every member
    of the shape (S, N, B, SS, ... ten of them) through a generic attribute picker, and
    deep-copies a query's page first: a page of 100 children took about 100 ms to answer.
    The plain `{type: value}` ones are written directly, byte for byte as moto writes
    them, and the page is not copied (moto's answer turns it into new dicts anyway).

The stricter world (IAM enforced on every request, DynamoDB's partition throughput and
transaction conflicts, SQS's retention, visibility, delay, size and character rules) and
the emulator's own `/_kit/` endpoint are in `tools/moto_kit/`, one module each; their
docstrings say what each enforces and what it cannot.

It runs only on the moto it was written against (`PINNED_MOTO` below, as pinned in
tools/requirements.txt): each fix replaces or wraps moto's own code, so a new moto must
be read again before it is used. `tools/test_emulator.py` holds a regression test per
fix and per limit, each failing on plain moto and passing here.

Everything else is moto as installed; `tools/emulator_query_speed.py` times the ledger's
queries on a growing partition.
"""

import bisect
import copy
import datetime
import io
import json
import sys
import threading
import time
from collections import defaultdict

import moto

# The moto every fix here was read against; tools/requirements.txt pins the same.
PINNED_MOTO = "5.2.5"

if moto.__version__ != PINNED_MOTO:
    sys.exit(
        f"tools/emulator.py: moto {moto.__version__} is installed, but the emulator's fixes "
        f"were written against moto {PINNED_MOTO}: each one replaces or wraps moto's own code "
        "(tools/emulator.py and tools/moto_kit/). Re-read moto's CloudFormation, DynamoDB, SQS "
        "and IAM code for each fix, run `.venv/bin/python -m unittest discover -s tools -p "
        "'test_*.py'`, then change PINNED_MOTO and tools/requirements.txt together "
        "(`make setup` installs the pinned one)."
    )

from moto.cloudformation import models as cloudformation  # noqa: E402

from moto_kit import control, iam, limits  # noqa: E402
from moto.core.common_models import CloudFormationModel  # noqa: E402
from moto.dynamodb.models.dynamo_type import DynamoType  # noqa: E402
from moto.secretsmanager.models import secretsmanager_backends  # noqa: E402

_execute_change_set = cloudformation.CloudFormationBackend.execute_change_set


def execute_change_set(self, change_set_name, stack_name=None):
    _execute_change_set(self, change_set_name, stack_name)
    change_set = self.change_sets.get(change_set_name) or next(
        cs for cs in self.change_sets.values() if cs.change_set_name == change_set_name
    )
    stack = self.stacks[change_set.stack_id]
    stack._parse_template()
    stack.description = stack.template_dict.get("Description")
    stack.parameters = change_set.parameters
    if change_set.tags:
        stack.tags = change_set.tags
    stack.output_map = stack._create_output_map()


cloudformation.CloudFormationBackend.execute_change_set = execute_change_set


class Secret(CloudFormationModel):
    """`AWS::SecretsManager::Secret`; `Ref` gives its ARN, as in AWS."""

    # moto files models by the service named in their module.
    __module__ = "moto.secretsmanager.models"

    def __init__(self, arn, account_id, region_name):
        self.arn = arn
        self.account_id = account_id
        self.region_name = region_name

    @property
    def physical_resource_id(self):
        return self.arn

    @staticmethod
    def cloudformation_name_type():
        return "Name"

    @staticmethod
    def cloudformation_type():
        return "AWS::SecretsManager::Secret"

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "Id"

    def get_cfn_attribute(self, attribute_name):
        return self.arn

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        props = cloudformation_json.get("Properties", {})
        backend = secretsmanager_backends[account_id][region_name]
        value = props.get("SecretString")
        generate = props.get("GenerateSecretString")
        if value is None and generate is not None:
            password = backend.get_random_password(
                password_length=int(generate.get("PasswordLength", 32)),
                exclude_characters=generate.get("ExcludeCharacters", ""),
                exclude_numbers=bool(generate.get("ExcludeNumbers", False)),
                exclude_punctuation=bool(generate.get("ExcludePunctuation", False)),
                exclude_uppercase=bool(generate.get("ExcludeUppercase", False)),
                exclude_lowercase=bool(generate.get("ExcludeLowercase", False)),
                include_space=bool(generate.get("IncludeSpace", False)),
                require_each_included_type=bool(
                    generate.get("RequireEachIncludedType", True)
                ),
            )
            value = json.loads(password)["RandomPassword"]
        created = backend.create_secret(
            name=props.get("Name") or resource_name,
            secret_string=value,
            secret_binary=None,
            description=props.get("Description"),
            tags=props.get("Tags"),
            kms_key_id=props.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        arn = (json.loads(created) if isinstance(created, str) else created)["ARN"]
        return cls(arn, account_id, region_name)

    def delete(self, account_id, region_name):
        secretsmanager_backends[account_id][region_name].delete_secret(
            self.arn, recovery_window_in_days=None, force_delete_without_recovery=True
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


_wrap_requests()
_queue_attributes_once_per_request()


def _attribute_value_json(value):
    """An `AttributeValue` as moto's JSON serializer writes it, or None for anything but
    the plain `{type: value}` moto's DynamoDB answers hold (fix 10)."""
    if type(value) is not dict or len(value) != 1:
        return None
    ((kind, inner),) = value.items()
    if kind in ("S", "N"):
        return {kind: inner} if type(inner) is str else None
    if kind in ("NULL", "BOOL"):
        return {kind: inner} if type(inner) is bool else None
    if kind == "B":
        return {kind: _base64(inner)} if type(inner) in (bytes, str) else None
    if kind in ("SS", "NS"):
        if type(inner) is list and all(type(v) is str for v in inner):
            return {kind: list(inner)}
        return None
    if kind == "BS":
        if type(inner) is list and all(type(v) in (bytes, str) for v in inner):
            return {kind: [_base64(v) for v in inner]}
        return None
    if kind == "M" and type(inner) is dict:
        members = {}
        for name, member in inner.items():
            written = _attribute_value_json(member)
            if written is None or type(name) is not str:
                return None
            members[name] = written
        return {kind: members}
    if kind == "L" and type(inner) is list:
        elements = []
        for element in inner:
            written = _attribute_value_json(element)
            if written is None:
                return None
            elements.append(written)
        return {kind: elements}
    return None


def _base64(value):
    import base64

    if isinstance(value, str):
        value = value.encode("utf-8")
    return base64.b64encode(value).strip().decode("utf-8")


def _plain_attribute_values():
    from moto.core.serialize import BaseJSONSerializer

    structure = BaseJSONSerializer._serialize_type_structure

    def serialize_structure(self, serialized, value, shape, key):
        # moto writes each AttributeValue by asking the value for every member of the
        # shape (S, N, B, SS, ... ten of them) through its attribute picker: about 1 ms
        # per item of a query's page. The plain ones are written directly, as it would.
        if key and shape.name == "AttributeValue":
            written = _attribute_value_json(value)
            if written is not None:
                serialized[self.get_serialized_name(shape, key)] = written
                return
        structure(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_structure = serialize_structure


_plain_attribute_values()


def _cheap_transactions():
    from moto.dynamodb import models as dynamodb
    from moto.dynamodb.models.table import Table

    class _KeepTables:
        # moto's `copy` inside transact_write_items: tables are not copied (the items
        # written are backed up below instead); everything else is copied as before.
        def __getattr__(self, name):
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value, memo=None):
            if isinstance(value, Table):
                return value
            return copy.deepcopy(value, memo)

    dynamodb.copy = _KeepTables()
    transact = dynamodb.DynamoDBBackend.transact_write_items

    def key_of(backend, op):
        table = backend.tables.get(op.get("TableName"))
        if table is None:
            return None, None
        if "Item" in op:
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs.get(table.hash_key_attr)}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs.get(table.range_key_attr)
            return table.name, key
        return table.name, op.get("Key")

    def transact_write_items(self, transact_items):
        backups = []
        for item in transact_items[:100]:
            _, op = next(iter(item.items()))
            table_name, key = key_of(self, op)
            if key is None or any(v is None for v in key.values()):
                continue
            try:
                current = self.get_item(table_name, key)
            except Exception:  # an invalid key: moto reports it below
                continue
            backups.append((table_name, key, copy.deepcopy(current)))
        try:
            return transact(self, transact_items)
        except Exception:
            for table_name, key, old in reversed(backups):
                if old is None:
                    if self.get_item(table_name, key) is not None:
                        self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, old.to_json()["Attributes"])
            raise

    dynamodb.DynamoDBBackend.transact_write_items = transact_write_items


_cheap_transactions()


# moto refuses an item over 405,000 bytes (its `LimitedSizeDict`); a little above that.
_LARGEST_ITEM = 410_000


class _SortedPartition(dict):
    """One partition's items by range key, its range keys also kept in order (fix 7).

    Every write moto makes to a partition goes through `__setitem__`, `pop` or `del`, so
    the order is maintained where the items change and a query bisects into it."""

    __slots__ = ("order", "keys_in_order")

    def __init__(self, items=()):
        super().__init__()
        self.order = []  # the range keys' values (what moto sorts by), ascending
        self.keys_in_order = []  # the range keys themselves, in the same order
        for key, value in dict(items).items():
            self[key] = value

    def __setitem__(self, key, value):
        if key not in self:
            value_of_key = key.cast_value
            at = bisect.bisect_right(self.order, value_of_key)
            self.order.insert(at, value_of_key)
            self.keys_in_order.insert(at, key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key):
        dict.__delitem__(self, key)
        self._forget(key)

    def pop(self, key, *default):
        if key in self:
            value = dict.pop(self, key)
            self._forget(key)
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self):
        key, value = dict.popitem(self)
        self._forget(key)
        return key, value

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args, **kwargs):
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self):
        dict.clear(self)
        self.order.clear()
        self.keys_in_order.clear()

    def _forget(self, key):
        at = bisect.bisect_left(self.order, key.cast_value)
        del self.order[at]
        del self.keys_in_order[at]

    def __copy__(self):
        return _SortedPartition(self)

    def __deepcopy__(self, memo):
        return _SortedPartition(
            {copy.deepcopy(k, memo): copy.deepcopy(v, memo) for k, v in self.items()}
        )

    def __reduce__(self):
        return (_SortedPartition, (dict(self),))


def _key_range(partition, comparison, values):
    """The slice of `partition.order` a key condition selects, or None when moto should
    answer (a comparison or value this does not know)."""
    order = partition.order
    if comparison is None:
        return 0, len(order)
    bounds = [v.cast_value for v in values]
    if comparison in ("=", "EQ"):
        return bisect.bisect_left(order, bounds[0]), bisect.bisect_right(order, bounds[0])
    if comparison in ("<", "LT"):
        return 0, bisect.bisect_left(order, bounds[0])
    if comparison in ("<=", "LE"):
        return 0, bisect.bisect_right(order, bounds[0])
    if comparison in (">", "GT"):
        return bisect.bisect_right(order, bounds[0]), len(order)
    if comparison in (">=", "GE"):
        return bisect.bisect_left(order, bounds[0]), len(order)
    if comparison == "BETWEEN":
        low, high = bisect.bisect_left(order, bounds[0]), bisect.bisect_right(order, bounds[1])
        return low, max(low, high)
    if comparison == "BEGINS_WITH":
        prefix = bounds[0]
        low = bisect.bisect_left(order, prefix)
        # The keys that start with the prefix are the first ones at or after it.
        high, end = low, len(order)
        while high < end:
            middle = (high + end) // 2
            if order[middle].startswith(prefix):
                high = middle + 1
            else:
                end = middle
        return low, high
    return None


def _partition_queries():
    from moto.dynamodb.models import table as tables
    from moto.dynamodb.models.table import Table

    query = Table.query
    init = Table.__init__

    def table_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if self.range_key_attr is not None:
            self.items = defaultdict(_SortedPartition)

    def partition_query(
        self,
        hash_key,
        range_comparison,
        range_objs,
        limit,
        exclusive_start_key,
        scan_index_forward,
        projection_expressions,
        index_name=None,
        consistent_read=False,
        filter_expression=None,
        hash_key_conditions=None,
        range_key_conditions=None,
        **filter_kwargs,
    ):
        moto = lambda: query(  # noqa: E731
            self,
            hash_key,
            range_comparison,
            range_objs,
            limit,
            exclusive_start_key,
            scan_index_forward,
            projection_expressions,
            index_name,
            consistent_read,
            filter_expression,
            hash_key_conditions=hash_key_conditions,
            range_key_conditions=range_key_conditions,
            **filter_kwargs,
        )
        # Index queries, legacy QueryFilter, a Limit below 1 and odd values stay moto's.
        if (
            index_name
            or filter_kwargs
            or self.range_key_attr is None
            or hash_key is None
            or (limit is not None and limit < 1)
            or (range_key_conditions and len(range_key_conditions) > 1)
            or any(v.type != self.range_key_type for v in range_objs)
        ):
            return moto()
        partition = self.items.get(hash_key)
        if partition is None:
            return [], 0, None
        if not isinstance(partition, _SortedPartition):
            return moto()
        selected = _key_range(partition, range_comparison, range_objs)
        if selected is None:
            return moto()
        low, high = selected
        # Where the scan starts, in the partition's order: after ExclusiveStartKey.
        begin, end = 0, len(partition.order)
        if exclusive_start_key is not None:
            start = exclusive_start_key.get(self.range_key_attr)
            if (
                start is None
                or DynamoType(exclusive_start_key.get(self.hash_key_attr) or {"NULL": True})
                != hash_key
            ):
                return moto()
            start = DynamoType(start)
            if start.type != self.range_key_type:
                return moto()
            if scan_index_forward:
                begin = bisect.bisect_right(partition.order, start.cast_value)
            else:
                end = bisect.bisect_left(partition.order, start.cast_value)
        low, high = max(low, begin), min(high, end)
        if scan_index_forward:
            in_range = range(low, high)
            after_range = range(max(high, begin), end)
        else:
            in_range = range(high - 1, low - 1, -1)
            after_range = range(min(low, end) - 1, begin - 1, -1)

        # moto's loop over the selected keys: stop at Limit or at 1 MB read.
        keys = partition.keys_in_order
        results = []
        result_size = 0
        last_evaluated_key = None
        for at in in_range:
            item = dict.__getitem__(partition, keys[at])
            size = item.size()
            if len(results) == limit or result_size + size > tables.RESULT_SIZE_LIMIT:
                last_evaluated_key = self._get_last_evaluated_key(results[-1], None)
                break
            results.append(item)
            result_size += size
        else:
            # moto also walks the partition's keys past the condition, and stops with a
            # LastEvaluatedKey at the first one it reaches with the page full (by count,
            # or by size: only worth looking when one more item could pass 1 MB).
            if results and after_range:
                if len(results) == limit:
                    last_evaluated_key = self._get_last_evaluated_key(results[-1], None)
                elif result_size > tables.RESULT_SIZE_LIMIT - _LARGEST_ITEM:
                    for at in after_range:
                        item = dict.__getitem__(partition, keys[at])
                        if result_size + item.size() > tables.RESULT_SIZE_LIMIT:
                            last_evaluated_key = self._get_last_evaluated_key(
                                results[-1], None
                            )
                            break
        scanned_count = len(results)
        # What the query read, before filter and projection, is what DynamoDB charges.
        limits.request.query_read_bytes = result_size
        # moto deep-copies the page here; its answer (`DynamoResult`) turns the items into
        # new plain dicts at once, so nothing can reach the stored items through it.
        if filter_expression is not None:
            results = [item for item in results if filter_expression.expr(item)]
        if projection_expressions:
            results = [r.project(projection_expressions) for r in results]
        return results, scanned_count, last_evaluated_key

    Table.__init__ = table_init
    Table.query = partition_query


_partition_queries()


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


_messages_by_receipt_handle()


if __name__ == "__main__":
    from moto.server import main

    iam.enforce()
    iam.create_admin()
    limits.enforce_dynamodb()
    limits.enforce_sqs()
    main(sys.argv[1:])
