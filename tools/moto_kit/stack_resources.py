"""A stack's resources as CloudFormation reports them (part of fix 11 of
`tools/emulator.py`; `stack_operations` runs the operations).

moto's CloudFormation records no event per resource, reports every resource as
`CREATE_COMPLETE` in `ListStackResources` (and with the stack's own status in
`DescribeStackResources`), and lets whatever a resource's create or update raises out of
the request. Here moto's per-resource create, update and delete are wrapped where moto
calls them:

- Each gets its events (`CREATE_IN_PROGRESS`, `CREATE_COMPLETE`, `CREATE_FAILED`, the
  `UPDATE_` and `DELETE_` ones, `DELETE_SKIPPED`) with the logical and physical id, the
  type and, on a failure, the reason, and the resource keeps that status, which the
  resource listings report.
- A resource a template refers to (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `DependsOn`) is
  created before the one referring to it, as CloudFormation orders them; moto created
  them in template order, each dependency in the middle of its dependent.
- Within a stack operation, an armed fault (`faults`) fails the resource before moto is
  asked, and a moto error with an AWS error code fails it with CloudFormation's
  account of it (`Resource handler returned message: "..."`). Either raises
  `ResourceFailed`, which the operation rolls back. Any other exception is a fault of
  moto's own code and stays an HTTP 500, as before.
- Within an update or its rollback, moto's deletes of the resources the new template
  drops are held back: CloudFormation deletes them in the cleanup after every other
  change succeeded, and never if the update fails.
- A resource of a type moto cannot update stays the resource it was (moto dropped it
  from the stack, so it was never deleted and its `Ref` turned empty).
"""

import re
import threading
from contextlib import contextmanager

from moto.cloudformation import parsing
from moto.cloudformation.models import Event, cloudformation_backends
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from werkzeug.exceptions import HTTPException

from . import faults

# Statuses of a resource that exists, so a stack deletion deletes it.
EXISTING = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_FAILED", "DELETE_FAILED"})


class ResourceFailed(BaseException):
    """A resource's operation failed and the stack operation stops. A BaseException, so it
    passes moto's retry loops in `ResourceMap.update` (which catch `Exception` and try
    again: an armed fault with `times` 1 would fail once and pass on the second try)."""

    def __init__(self, logical_id, status):
        super().__init__(logical_id, status)
        self.logical_id = logical_id
        self.status = status


class Record:
    """A resource as the listings report it; `definition` is its template entry, for its
    DeletionPolicy and what it refers to."""

    __slots__ = ("logical_id", "type", "physical_id", "status", "reason", "timestamp", "definition")

    def __init__(self, logical_id, resource_type):
        self.logical_id = logical_id
        self.type = resource_type
        self.physical_id = ""
        self.status = None
        self.reason = None
        self.timestamp = utcnow()
        self.definition = {}


class Resources:
    """What the emulator knows of a stack's resources (kept on moto's `Stack`)."""

    def __init__(self):
        self.records = {}
        # Logical ids in the order they were first created: deletions go in reverse.
        self.order = []
        # The update rollback in progress or failed (`stack_operations`).
        self.rollback = None


def of(stack):
    state = getattr(stack, "kit_resources", None)
    if state is None:
        state = stack.kit_resources = Resources()
    return state


class Operation:
    """A stack operation in progress on this thread: `create`, `update` or `rollback` (of an
    update); a deletion needs none."""

    def __init__(self, kind, stack=None):
        self.kind = kind
        self.stack = stack  # CreateStack binds it once moto made the stack
        self.created = []  # logical ids, in order
        self.updated = []
        self.failed = []  # (logical id, status)
        self.removed = {}  # logical id → template entry, whose delete moto asked for
        # A rollback's resources: those to update back, those whose failed update left
        # them as they were (nothing to ask of moto), those skipped (ContinueUpdateRollback).
        self.restore = set()
        self.unchanged = set()
        self.skip = set()
        self.skipped = []


_thread = threading.local()


@contextmanager
def running(operation):
    stack = _thread.__dict__.setdefault("operations", [])
    stack.append(operation)
    try:
        yield operation
    finally:
        stack.pop()


def _operation(stack):
    operations = _thread.__dict__.get("operations")
    if not operations:
        return None
    operation = operations[-1]
    if operation.stack is None:
        operation.stack = stack
    return operation if operation.stack is stack else None


def _stack_of(resource_map):
    backend = cloudformation_backends[resource_map._account_id][resource_map._region_name]
    return backend.stacks.get(resource_map.stack_id)


def physical_id(resource):
    if resource is None or isinstance(resource, str):
        return ""
    try:
        value = resource.physical_resource_id
    except Exception:  # a model without one
        return ""
    return "" if value is None else str(value)


def set_status(stack, logical_id, resource_type, status, physical=None, reason=None, definition=None):
    """Records `status` for the resource and adds its event, as AWS does on each change."""
    state = of(stack)
    record = state.records.get(logical_id)
    if record is None:
        record = state.records[logical_id] = Record(logical_id, resource_type)
    record.type = resource_type
    if physical is not None:
        record.physical_id = physical
    if definition is not None:
        record.definition = definition
    record.status = status
    record.reason = reason
    record.timestamp = utcnow()
    event = Event(
        stack_id=stack.stack_id,
        stack_name=stack.name,
        logical_resource_id=logical_id,
        physical_resource_id=record.physical_id,
        resource_type=resource_type,
        resource_status=status,
        resource_status_reason=reason,
        resource_properties=None,
    )
    event.sendToSns(stack.account_id, stack.region_name, stack.notification_arns)
    stack.events.append(event)


def forget(stack, logical_id):
    """The resource is no longer part of the stack (the template dropped it)."""
    state = of(stack)
    state.records.pop(logical_id, None)
    if logical_id in state.order:
        state.order.remove(logical_id)
    stack.resource_map._parsed_resources.pop(logical_id, None)


# An error code's HTTP status where the exception does not carry one.
_HTTP_STATUS = {"BucketNotEmpty": 409}
# CloudFormation's handler error code for parts of an AWS error code, first match wins.
_HANDLER_CODES = (
    ("AlreadyExist", "AlreadyExists"),
    ("ResourceInUse", "AlreadyExists"),
    ("ResourceExists", "AlreadyExists"),
    ("NotFound", "NotFound"),
    ("NoSuch", "NotFound"),
    ("AccessDenied", "AccessDenied"),
    ("Throttl", "Throttling"),
    ("LimitExceeded", "ServiceLimitExceeded"),
    ("Validation", "InvalidRequest"),
    ("InvalidParameter", "InvalidRequest"),
)


def failure_reason(error, resource_type):
    """CloudFormation's account of a moto error that has an AWS error code, or None for
    any other exception."""
    if isinstance(error, ServiceException):
        code, message = error.code, error.message
        status = _HTTP_STATUS.get(code, 400)
    elif isinstance(error, HTTPException) and getattr(error, "error_type", None):
        code, message = error.error_type.split("#")[-1], error.message
        status = error.code if isinstance(error.code, int) else 400
    else:
        return None
    parts = resource_type.split("::")
    service = parts[1] if len(parts) == 3 else resource_type
    handler = next((h for part, h in _HANDLER_CODES if part in code), "GeneralServiceException")
    return (
        f'Resource handler returned message: "{message} (Service: {service}, Status Code: '
        f'{status}, Error Code: {code})" (HandlerErrorCode: {handler})'
    )


def _fail(operation, stack, logical_id, resource_type, status, reason):
    set_status(stack, logical_id, resource_type, status, reason=reason)
    operation.failed.append((logical_id, status))
    raise ResourceFailed(logical_id, status)


def references(definition):
    """The logical ids a template entry refers to (its properties and DependsOn)."""
    found = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "Ref" and isinstance(value, str):
                    found.add(value)
                elif key == "Fn::GetAtt" and isinstance(value, list) and value:
                    found.add(str(value[0]))
                elif key == "Fn::GetAtt" and isinstance(value, str):
                    found.add(value.split(".")[0])
                elif key == "Fn::Sub":
                    template = value[0] if isinstance(value, list) and value else value
                    if isinstance(template, str):
                        for name in re.findall(r"\$\{([^!}][^}]*)\}", template):
                            found.add(name.split(".")[0])
                    if isinstance(value, list) and len(value) > 1:
                        walk(value[1])
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(definition.get("Properties", {}))
    depends = definition.get("DependsOn", [])
    found.update([depends] if isinstance(depends, str) else depends)
    return found


_create = parsing.parse_and_create_resource
_update = parsing.parse_and_update_resource
_delete = parsing.ResourceMap._delete_resource


def _create_dependencies(definition, resource_map):
    resolving = _thread.__dict__.setdefault("resolving", set())
    for name in sorted(references(definition)):
        if (
            name in resource_map._resource_json_map
            and name not in resource_map._parsed_resources
            and name not in resolving
        ):
            resource_map[name]


def create_resource(logical_id, resource_json, resources_map, account_id, region_name):
    condition = resource_json.get("Condition")
    stack = _stack_of(resources_map)
    if stack is None or (condition and not resources_map.lazy_condition_map[condition]):
        return _create(logical_id, resource_json, resources_map, account_id, region_name)
    resource_type = resource_json["Type"]
    record = of(stack).records.get(logical_id)
    if (
        parsing.resource_class_from_type(resource_type) is None
        and record is not None
        and record.status in EXISTING
    ):
        # moto keeps no object of a type it does not model and asks again on each use.
        return None
    resolving = _thread.__dict__.setdefault("resolving", set())
    resolving.add(logical_id)
    try:
        _create_dependencies(resource_json, resources_map)
    finally:
        resolving.discard(logical_id)
    operation = _operation(stack)
    set_status(stack, logical_id, resource_type, "CREATE_IN_PROGRESS", physical="", definition=resource_json)
    if operation is None:
        resource = _create(logical_id, resource_json, resources_map, account_id, region_name)
    else:
        if faults.take(stack.name, logical_id, "create"):
            _fail(operation, stack, logical_id, resource_type, "CREATE_FAILED", faults.REASON)
        try:
            resource = _create(logical_id, resource_json, resources_map, account_id, region_name)
        except Exception as error:
            reason = failure_reason(error, resource_type)
            if reason is None:
                raise
            _fail(operation, stack, logical_id, resource_type, "CREATE_FAILED", reason)
    set_status(stack, logical_id, resource_type, "CREATE_COMPLETE", physical=physical_id(resource))
    state = of(stack)
    if logical_id not in state.order:
        state.order.append(logical_id)
    if operation is not None:
        operation.created.append(logical_id)
    return resource


def update_resource(logical_id, resource_json, resources_map, account_id, region_name):
    stack = _stack_of(resources_map)
    operation = _operation(stack) if stack is not None else None
    if operation is None:
        return _update(logical_id, resource_json, resources_map, account_id, region_name)
    resource_type = resource_json["Type"]
    current = resources_map._parsed_resources.get(logical_id)
    if operation.kind == "rollback":
        if logical_id in operation.skip:
            # ContinueUpdateRollback's ResourcesToSkip: left as the failed update left it.
            set_status(stack, logical_id, resource_type, "UPDATE_COMPLETE", definition=resource_json)
            operation.skipped.append(logical_id)
            return current
        if logical_id not in operation.restore:
            return current  # the failed update never changed it
    set_status(stack, logical_id, resource_type, "UPDATE_IN_PROGRESS", definition=resource_json)
    if faults.take(stack.name, logical_id, "update"):
        _fail(operation, stack, logical_id, resource_type, "UPDATE_FAILED", faults.REASON)
    if operation.kind == "rollback" and logical_id in operation.unchanged:
        resource = current
    else:
        try:
            resource = _update(logical_id, resource_json, resources_map, account_id, region_name)
        except Exception as error:
            reason = failure_reason(error, resource_type)
            if reason is None:
                raise
            _fail(operation, stack, logical_id, resource_type, "UPDATE_FAILED", reason)
        if resource is None:
            resource = current  # a type moto cannot update stays what it was
    set_status(stack, logical_id, resource_type, "UPDATE_COMPLETE", physical=physical_id(resource) or None)
    operation.updated.append(logical_id)
    return resource


def delete_resource(self, parsed_resource, resource_json):
    stack = _stack_of(self)
    operation = _operation(stack) if stack is not None else None
    if operation is not None and operation.kind in ("update", "rollback"):
        logical_id = getattr(parsed_resource, "logical_resource_id", None) or next(
            (k for k, v in self._parsed_resources.items() if v is parsed_resource), None
        )
        if logical_id is not None:
            operation.removed[logical_id] = resource_json
            return
    _delete(self, parsed_resource, resource_json)


def delete(stack, logical_id):
    """Deletes one resource of `stack` through moto, with its events; False when it failed
    (the resource stays, `DELETE_FAILED` with the reason)."""
    record = of(stack).records[logical_id]
    resource_map = stack.resource_map
    set_status(stack, logical_id, record.type, "DELETE_IN_PROGRESS")
    fault = faults.take(stack.name, logical_id, "delete")
    if fault and "late_object" in fault:
        _deliver_late(stack, record, fault["late_object"])
        fault = None
    if fault:
        set_status(stack, logical_id, record.type, "DELETE_FAILED", reason=faults.REASON)
        return False
    resource = resource_map._parsed_resources.get(logical_id)
    if resource is not None and not isinstance(resource, str):
        try:
            _delete(resource_map, resource, record.definition)
        except Exception as error:
            reason = failure_reason(error, record.type)
            if reason is None:
                raise
            set_status(stack, logical_id, record.type, "DELETE_FAILED", reason=reason)
            return False
    resource_map._parsed_resources.pop(logical_id, None)
    set_status(stack, logical_id, record.type, "DELETE_COMPLETE")
    return True


def _deliver_late(stack, record, key):
    """An object arriving in the bucket after it was emptied (access logs do)."""
    if record.type != "AWS::S3::Bucket" or not record.physical_id:
        return
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    backend = s3_backends[stack.account_id][get_partition(stack.region_name)]
    backend.put_object(record.physical_id, key, b"delivered after the bucket was emptied\n")


# ---------------------------------------------------------------------------------------
# The listings, from the records.


def _find(response):
    return response.cloudformation_backend.get_stack(response._get_param("StackName"))


def _summary(record):
    """A resource as ListStackResources lists it."""
    return {
        "LogicalResourceId": record.logical_id,
        "PhysicalResourceId": record.physical_id,
        "ResourceType": record.type,
        "ResourceStatus": record.status,
        "ResourceStatusReason": record.reason,
        "LastUpdatedTimestamp": record.timestamp,
    }


def _described(stack, record, timestamp_key):
    """A resource as DescribeStackResources (`Timestamp`) and DescribeStackResource
    (`LastUpdatedTimestamp`) describe it."""
    row = _summary(record)
    row.pop("LastUpdatedTimestamp")
    return {**row, "StackName": stack.name, "StackId": stack.stack_id, timestamp_key: record.timestamp}


def install():
    from moto.cloudformation.exceptions import ValidationError
    from moto.cloudformation.responses import CloudFormationResponse

    parsing.parse_and_create_resource = create_resource
    parsing.parse_and_update_resource = update_resource
    parsing.ResourceMap._delete_resource = delete_resource

    list_resources = CloudFormationResponse.list_stack_resources
    describe_resources = CloudFormationResponse.describe_stack_resources
    describe_resource = CloudFormationResponse.describe_stack_resource

    def list_stack_resources(self):
        stack = _find(self)
        if getattr(stack, "kit_resources", None) is None:
            return list_resources(self)
        rows = [_summary(r) for r in stack.kit_resources.records.values()]
        return ActionResult({"StackResourceSummaries": rows})

    def describe_stack_resources(self):
        if not self._get_param("StackName"):
            return describe_resources(self)  # asked by PhysicalResourceId
        stack = _find(self)
        if getattr(stack, "kit_resources", None) is None:
            return describe_resources(self)
        wanted = self._get_param("LogicalResourceId")
        rows = [
            _described(stack, r, "Timestamp")
            for r in stack.kit_resources.records.values()
            if wanted is None or r.logical_id == wanted
        ]
        return ActionResult({"StackResources": rows})

    def describe_stack_resource(self):
        stack = _find(self)
        if getattr(stack, "kit_resources", None) is None:
            return describe_resource(self)
        wanted = self._get_param("LogicalResourceId")
        record = stack.kit_resources.records.get(wanted)
        if record is None:
            raise ValidationError(stack.name, f"Resource {wanted} does not exist for stack {stack.name}")
        return ActionResult({"StackResourceDetail": _described(stack, record, "LastUpdatedTimestamp")})

    CloudFormationResponse.list_stack_resources = list_stack_resources
    CloudFormationResponse.describe_stack_resources = describe_stack_resources
    CloudFormationResponse.describe_stack_resource = describe_stack_resource
