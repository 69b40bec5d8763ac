"""moto's DynamoDB made fast enough for the pipeline (fixes 4, 7 and 10 of
`tools/emulator.py`): transactions back up only the items they touch, queries read one
partition kept in key order, and plain attribute values are written directly."""

import bisect
import copy
from collections import defaultdict

from moto.dynamodb.models.dynamo_type import DynamoType

from . import limits

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


def install():
    _plain_attribute_values()
    _cheap_transactions()
    _partition_queries()
