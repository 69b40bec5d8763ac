"""CloudFormation's stack operations as AWS runs them (fix 11 of `tools/emulator.py`).

moto 5.2.5 applies a change set's template and stops at the first error, leaving what it
made ("TODO: handle execution errors and implement rollback"), and deletes a stack by
dropping it from the list even when a resource's delete failed. Here each operation runs
moto's own per-resource code (`stack_resources` records their events and statuses) and
ends as CloudFormation ends it:

- **Create** (a `CREATE` change set, or `CreateStack`): a failed resource
  (`CREATE_FAILED`) rolls the stack back (`ROLLBACK_IN_PROGRESS`, "The following
  resource(s) failed to create: [X]. Rollback requested by user."): what this create made
  is deleted newest first, but `DeletionPolicy: Retain` (`DELETE_SKIPPED`);
  `RetainExceptOnCreate` is deleted, since this operation made it. What was never made
  is not touched. The stack ends `ROLLBACK_COMPLETE`, or `ROLLBACK_FAILED` when a delete
  failed, with no outputs; it stays listed until it is deleted.
- **Update** (an `UPDATE` change set, or `UpdateStack`): the new template's resources are created and
  updated first; the ones it drops are deleted in `UPDATE_COMPLETE_CLEANUP_IN_PROGRESS`
  (Retain and RetainExceptOnCreate kept). A failed resource (`UPDATE_FAILED`, or
  `CREATE_FAILED` for a new one) rolls the stack back (`UPDATE_ROLLBACK_IN_PROGRESS`): the
  previous template and parameters are applied again through moto's own update, which
  updates back what the update changed, then what it added is deleted
  (`UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS`), and the stack ends
  `UPDATE_ROLLBACK_COMPLETE` with its previous template, parameters and outputs, or
  `UPDATE_ROLLBACK_FAILED` when a resource could not be updated back.
- **ContinueUpdateRollback** (which moto lacks): only on `UPDATE_ROLLBACK_FAILED`; tries
  the rollback again, `ResourcesToSkip` (resources whose rollback failed) marked
  `UPDATE_COMPLETE` and left as they are.
- **DeleteStack**: resources are deleted newest first (so each before what it refers
  to), Retain and RetainExceptOnCreate kept (`DELETE_SKIPPED`); a failed delete
  (`DELETE_FAILED`) leaves what it refers to in place and the stack `DELETE_FAILED`,
  listed. `RetainResources` is taken only from a stack in `DELETE_FAILED` and keeps those
  resources. A stack in `ROLLBACK_COMPLETE`, `ROLLBACK_FAILED` or `UPDATE_ROLLBACK_FAILED`
  is deleted the same way.
- **CreateChangeSet** and **UpdateStack** refuse, as AWS does, an update of a stack that
  is not in a state that takes one (`ROLLBACK_COMPLETE`, `ROLLBACK_FAILED`,
  `UPDATE_ROLLBACK_FAILED`, `DELETE_FAILED`, ...; moto refused only `ROLLBACK_COMPLETE`,
  and only in UpdateStack), and CreateChangeSet a `CREATE` for a name a live stack holds
  (other than one in `REVIEW_IN_PROGRESS`; moto made a second stack of that name).
  **ExecuteChangeSet** refuses a change set that is not available (already executed, or
  without changes), which moto ran again.

Operations run one at a time and finish within the request, so a stack is never seen
`_IN_PROGRESS`. Not modelled: `DisableRollback` / `OnFailure` (a failed create always
rolls back), the stack-level `RetainExceptOnCreate` flag, replacement order (moto
replaces a resource in place during the update; CloudFormation makes the new one first
and deletes the old in the cleanup), cancelling, timeouts, stack policies and nested
stacks' own rollbacks.
"""

import threading
from collections.abc import Mapping

from moto.cloudformation import models
from moto.cloudformation.exceptions import CloudFormationError, ValidationError
from moto.cloudformation.parsing import OutputMap
from moto.core.responses import EmptyResult

from . import stack_resources as resources

# Stack operations, one at a time (nested stacks re-enter).
_lock = threading.RLock()

KEPT_ON_STACK_DELETE = ("Retain", "RetainExceptOnCreate")
# Stack states that take an UPDATE change set.
UPDATABLE = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"}
)


class InvalidChangeSetStatus(CloudFormationError):
    code = "InvalidChangeSetStatus"
    # moto finds an error's service by its module ("moto_kit" reads as a moto package).
    __module__ = "moto.cloudformation.exceptions"


def _stack_event(stack, status, reason=None):
    stack.status = status
    stack.status_reason = reason  # DescribeStacks' StackStatusReason
    stack._add_stack_event(status, resource_status_reason=reason)


def _ids(logical_ids):
    return ", ".join(logical_ids)


class _Outputs(Mapping):
    """A stack's outputs and exports as they were when its deletion began: moto works them
    out again on each DescribeStacks, and a reference to a deleted resource would make
    the resource again."""

    def __init__(self, output_map):
        try:
            self._outputs = {k: o for k in output_map if (o := output_map[k])}
            self.exports = output_map.exports
        except Exception:  # outputs moto cannot work out show as none
            self._outputs, self.exports = {}, []

    def __getitem__(self, key):
        return self._outputs[key]

    def __iter__(self):
        return iter(self._outputs)

    def __len__(self):
        return len(self._outputs)


def _no_outputs(stack):
    return OutputMap(stack.resource_map, {}, stack.stack_id)


def _delete_all(stack, logical_ids, keep):
    """Deletes `logical_ids` in that order; `keep(logical_id, policy)` says which stay
    (`DELETE_SKIPPED`). A resource that something still standing refers to (a failed
    delete, or one left for that reason) is not touched. Returns the failed ones."""
    state = resources.of(stack)
    failed, standing = [], []
    for logical_id in logical_ids:
        record = state.records.get(logical_id)
        if record is None or record.status not in resources.EXISTING:
            continue
        if any(logical_id in resources.references(state.records[s].definition) for s in standing):
            standing.append(logical_id)
            continue
        if keep(logical_id, record.definition.get("DeletionPolicy")):
            resources.set_status(stack, logical_id, record.type, "DELETE_SKIPPED")
            continue
        if not resources.delete(stack, logical_id):
            failed.append(logical_id)
            standing.append(logical_id)
    return failed


def _clean_up(stack, operation, keep):
    """Deletes what the operation's new template dropped: the resources moto asked to
    delete, and those moto holds no object of."""
    state = resources.of(stack)
    template = stack.resource_map._resource_json_map
    dropped = [
        logical_id
        for logical_id in reversed(state.order)
        if logical_id in operation.removed or logical_id not in template
    ]
    failed = _delete_all(stack, dropped, keep)
    for logical_id in dropped:
        if logical_id not in failed:
            resources.forget(stack, logical_id)


# ---------------------------------------------------------------------------------------
# Create


def _roll_back_create(stack, operation):
    failed = [logical_id for logical_id, _ in operation.failed]
    _stack_event(
        stack,
        "ROLLBACK_IN_PROGRESS",
        f"The following resource(s) failed to create: [{_ids(failed)}]. Rollback requested by user.",
    )
    # A create that failed shows no outputs (moto would work them out from what is deleted).
    stack.output_map = _no_outputs(stack)
    state = resources.of(stack)
    for logical_id in failed:
        # Nothing was made, so there is nothing to delete.
        resources.set_status(stack, logical_id, state.records[logical_id].type, "DELETE_COMPLETE")
    left = _delete_all(
        stack, list(reversed(operation.created)), keep=lambda _, policy: policy == "Retain"
    )
    if left:
        _stack_event(stack, "ROLLBACK_FAILED", f"The following resource(s) failed to delete: [{_ids(left)}]. ")
    else:
        _stack_event(stack, "ROLLBACK_COMPLETE")


def _create_from(stack, change_set):
    previous = stack.status
    stack.template = change_set.template
    stack.parameters = change_set.parameters
    _stack_event(stack, "CREATE_IN_PROGRESS", "User Initiated")
    operation = resources.Operation("create", stack)
    try:
        with resources.running(operation):
            change_set.apply()
    except resources.ResourceFailed:
        change_set.execution_status = "EXECUTE_FAILED"
        _roll_back_create(stack, operation)
        return
    except Exception:
        stack.status = previous  # a fault of moto's own code: as moto left it
        raise
    _stack_event(stack, "CREATE_COMPLETE")
    change_set.execution_status = "EXECUTE_COMPLETE"


# ---------------------------------------------------------------------------------------
# Update and its rollback


class _RollbackPlan:
    """What an update rollback restores and how far it got."""

    def __init__(self, stack, new_template_dict, new_parameters):
        resource_map = stack.resource_map
        self.template = stack.template
        self.template_dict = resource_map._template
        self.parameters = stack.parameters
        self.input_parameters = dict(resource_map.input_parameters)
        self.description = stack.description
        self.new_resources = new_template_dict["Resources"]
        self.new_input_parameters = dict(new_parameters or {})
        self.restore = set()  # what the update changed
        self.unchanged = set()  # of those, what its failed update left as it was
        self.create_failed = []
        self.done = set()  # updated back, or skipped
        self.failed = set()  # whose update back failed the last time
        self.reason = None

    def failed_update(self, operation):
        failures = dict(operation.failed)
        self.unchanged = {l for l, s in failures.items() if s == "UPDATE_FAILED"}
        self.restore = set(operation.updated) | self.unchanged
        self.create_failed = [l for l, s in failures.items() if s == "CREATE_FAILED"]
        verb = "update" if self.unchanged else "create"
        self.reason = f"The following resource(s) failed to {verb}: [{_ids(failures)}]. "


def _roll_back_update(stack, plan, skip=(), reason=None):
    resource_map = stack.resource_map
    _stack_event(stack, "UPDATE_ROLLBACK_IN_PROGRESS", reason or plan.reason)
    stack.template = plan.template
    # moto's update compares the template it is given with the stack's current one: the
    # failed update's, so the diff finds what to update back and what to delete.
    resource_map._resource_json_map = plan.new_resources
    resource_map.input_parameters = dict(plan.new_input_parameters) if plan.input_parameters else {}
    operation = resources.Operation("rollback", stack)
    operation.restore = plan.restore - plan.done
    operation.unchanged = plan.unchanged
    operation.skip = set(skip)
    try:
        with resources.running(operation):
            resource_map.update(plan.template_dict, plan.input_parameters)
    except resources.ResourceFailed:
        plan.done |= set(operation.updated) | set(operation.skipped)
        plan.failed = {logical_id for logical_id, _ in operation.failed}
        _stack_event(
            stack, "UPDATE_ROLLBACK_FAILED", f"The following resource(s) failed to update: [{_ids(sorted(plan.failed))}]. "
        )
        return
    stack._parse_template()
    stack.parameters = plan.parameters
    stack.description = plan.description
    stack.output_map = stack._create_output_map()
    _stack_event(stack, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
    state = resources.of(stack)
    for logical_id in plan.create_failed:
        resources.set_status(stack, logical_id, state.records[logical_id].type, "DELETE_COMPLETE")
        resources.forget(stack, logical_id)
    # What the failed update made is deleted, RetainExceptOnCreate included.
    _clean_up(stack, operation, keep=lambda _, policy: policy == "Retain")
    state.rollback = None
    _stack_event(stack, "UPDATE_ROLLBACK_COMPLETE")


def _update(stack, template, template_dict, parameters):
    """Updates `stack` to `template` through moto's own update; False when it failed and
    was rolled back."""
    previous = stack.status
    plan = _RollbackPlan(stack, template_dict, parameters)
    _stack_event(stack, "UPDATE_IN_PROGRESS", "User Initiated")
    operation = resources.Operation("update", stack)
    try:
        with resources.running(operation):
            stack.resource_map.update(template_dict, parameters)
    except resources.ResourceFailed:
        plan.failed_update(operation)
        resources.of(stack).rollback = plan
        _roll_back_update(stack, plan)
        return False
    except Exception:
        stack.status = previous
        raise
    stack.template = template
    _stack_event(stack, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
    _clean_up(stack, operation, keep=lambda _, policy: policy in KEPT_ON_STACK_DELETE)
    _stack_event(stack, "UPDATE_COMPLETE")
    return True


def _update_from(stack, change_set):
    done = _update(stack, change_set.template, change_set.template_dict, change_set.parameters)
    change_set.execution_status = "EXECUTE_COMPLETE" if done else "EXECUTE_FAILED"


def update_stack(self, template, role_arn=None, parameters=None, tags=None):
    """`Stack.update` (UpdateStack) as a change set's update, then what moto's does after."""
    with _lock:
        if not _update(self, template, self.parse_template(template), parameters or {}):
            return
        self._parse_template()
        self.output_map = self._create_output_map()
        self.role_arn = role_arn
        if parameters:
            self.parameters = parameters
        if tags is not None:
            self.tags = tags


def continue_update_rollback(self, stack_name, resources_to_skip=()):
    with _lock:
        stack = self.get_stack(stack_name)
        plan = resources.of(stack).rollback
        if stack.status != "UPDATE_ROLLBACK_FAILED" or plan is None:
            raise ValidationError(
                stack.stack_id, message="ContinueUpdateRollback cannot be called from current stack status"
            )
        wrong = [r for r in resources_to_skip if r not in plan.failed]
        if wrong:
            raise ValidationError(
                stack.stack_id,
                message=f"Resources [{_ids(wrong)}] cannot be skipped: ResourcesToSkip takes only "
                "resources whose update rollback failed (UPDATE_FAILED)",
            )
        _roll_back_update(stack, plan, skip=resources_to_skip, reason="User Initiated")


# ---------------------------------------------------------------------------------------
# Delete


def _delete_stack(backend, stack, retain):
    if retain and stack.status != "DELETE_FAILED":
        raise ValidationError(
            stack.stack_id,
            message=f"Invalid operation on stack [{stack.stack_id}]. RetainResources can only "
            "be specified when the stack is in the DELETE_FAILED state.",
        )
    if not isinstance(stack.output_map, _Outputs):
        stack.output_map = _Outputs(stack.output_map)
    _stack_event(stack, "DELETE_IN_PROGRESS", "User Initiated")
    state = resources.of(stack)
    left = _delete_all(
        stack,
        list(reversed(state.order)),
        keep=lambda logical_id, policy: policy in KEPT_ON_STACK_DELETE or logical_id in retain,
    )
    if left:
        _stack_event(stack, "DELETE_FAILED", f"The following resource(s) failed to delete: [{_ids(left)}]. ")
        return
    state.rollback = None
    for name, export in list(backend.exports.items()):
        if export.exporting_stack_id == stack.stack_id:
            backend.exports.pop(name)
    # A deleted stack's change sets go with it.
    for change_set_id, change_set in list(backend.change_sets.items()):
        if change_set.stack_id == stack.stack_id:
            backend.change_sets.pop(change_set_id)
    _stack_event(stack, "DELETE_COMPLETE")
    backend.stacks.pop(stack.stack_id, None)
    backend.deleted_stacks[stack.stack_id] = stack


def delete_stack(self, name_or_stack_id, retain_resources=None):
    with _lock:
        if name_or_stack_id in self.stacks:
            stacks = [self.stacks[name_or_stack_id]]
        else:
            stacks = [s for s in self.stacks.values() if s.name == name_or_stack_id]
        for stack in stacks:
            _delete_stack(self, stack, list(retain_resources or []))


# ---------------------------------------------------------------------------------------
# Change sets and CreateStack


def _change_set(backend, change_set_name, stack_name):
    if change_set_name in backend.change_sets:
        return backend.change_sets[change_set_name]
    for change_set in backend.change_sets.values():
        if (
            change_set.change_set_name == change_set_name
            and change_set.stack_id in backend.stacks
            and (stack_name is None or stack_name in (change_set.stack_name, change_set.stack_id))
        ):
            return change_set
    raise ValidationError(stack_name, message=f"ChangeSet [{change_set_name}] does not exist")


def execute_change_set(self, change_set_name, stack_name=None):
    with _lock:
        change_set = _change_set(self, change_set_name, stack_name)
        if change_set.status != "CREATE_COMPLETE":
            raise InvalidChangeSetStatus(
                f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current "
                f"status of [{change_set.status}]"
            )
        if change_set.execution_status != "AVAILABLE":
            raise InvalidChangeSetStatus(
                f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current "
                f"execution status of [{change_set.execution_status}]"
            )
        stack = self.stacks[change_set.stack_id]
        if change_set.change_set_type == "CREATE":
            _create_from(stack, change_set)
        else:
            _must_take_updates(stack)  # its state may have changed since the change set was made
            _update_from(stack, change_set)
        return change_set  # for the outputs fix (`cloudformation`), which wraps this


def _must_take_updates(stack):
    if stack.status not in UPDATABLE:
        raise ValidationError(
            stack.stack_id,
            message=f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.",
        )


def _guard_create_change_set(create_change_set):
    def guarded(self, stack_name, change_set_name, template, parameters, description, change_set_type, *args, **kwargs):
        live = [s for s in self.stacks.values() if s.name == stack_name]
        if change_set_type == "UPDATE":
            for stack in live:
                _must_take_updates(stack)
        elif any(s.status != "REVIEW_IN_PROGRESS" for s in live):
            raise ValidationError(
                stack_name,
                message=f"Stack [{stack_name}] already exists and cannot be created again with "
                f"the changeSet [{change_set_name}].",
            )
        return create_change_set(
            self, stack_name, change_set_name, template, parameters, description, change_set_type, *args, **kwargs
        )

    return guarded


def _rolling_back_create_stack(create_stack):
    def create(self, name, template, parameters, *args, **kwargs):
        with _lock:
            operation = resources.Operation("create")
            try:
                with resources.running(operation):
                    return create_stack(self, name, template, parameters, *args, **kwargs)
            except resources.ResourceFailed:
                stack = operation.stack
                if not any(e.resource_status == "CREATE_IN_PROGRESS" and e.logical_resource_id == stack.name for e in stack.events):
                    _stack_event(stack, "CREATE_IN_PROGRESS", "User Initiated")
                for export_name, export in list(self.exports.items()):
                    if export.exporting_stack_id == stack.stack_id:
                        self.exports.pop(export_name)
                _roll_back_create(stack, operation)
                return stack

    return create


def install():
    from moto.cloudformation.responses import CloudFormationResponse

    backend = models.CloudFormationBackend
    backend.execute_change_set = execute_change_set
    backend.delete_stack = delete_stack
    backend.continue_update_rollback = continue_update_rollback
    backend.create_change_set = _guard_create_change_set(backend.create_change_set)
    backend.create_stack = _rolling_back_create_stack(backend.create_stack)
    models.Stack.update = update_stack

    def delete_stack_response(self):
        self.cloudformation_backend.delete_stack(
            self._get_param("StackName"), self._get_param("RetainResources", [])
        )
        return EmptyResult()

    def continue_update_rollback_response(self):
        self.cloudformation_backend.continue_update_rollback(
            self._get_param("StackName"), self._get_param("ResourcesToSkip", [])
        )
        return EmptyResult()

    CloudFormationResponse._validate_status = lambda self, stack: _must_take_updates(stack)
    CloudFormationResponse.delete_stack = delete_stack_response
    CloudFormationResponse.continue_update_rollback = continue_update_rollback_response
