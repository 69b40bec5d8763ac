"""Failures armed on request through `/_kit/faults` (see `control`), for CloudFormation's
resource operations (`stack_operations` asks here before each one).

A fault names a stack (by name), a resource of it (logical id) and an operation
(`create`, `update` or `delete`). The next `times` times CloudFormation performs that
operation on that resource, during a change set, a rollback, a cleanup or a stack
deletion alike, the operation fails with `REASON` and moto is not asked. A delete fault
with `late_object` fails nothing: the object with that key is put into the bucket just
before CloudFormation deletes it, as an access log delivered after the bucket was emptied.
"""

import threading

REASON = 'Resource handler returned message: "failed on request (emulator fault)"'
OPERATIONS = ("create", "update", "delete")

_lock = threading.Lock()
# Armed faults in the order they were armed; each dict is what `listing` shows.
_armed = []


def arm(spec):
    """Arms the fault `spec` describes (the JSON body of `POST /_kit/faults`)."""
    if not isinstance(spec, dict):
        raise ValueError("expected a JSON object: {\"stack\", \"resource\", \"on\", \"times\"}")
    unknown = set(spec) - {"stack", "resource", "on", "times", "late_object"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
    for name in ("stack", "resource"):
        if not isinstance(spec.get(name), str) or not spec[name]:
            raise ValueError(f"`{name}` must be a non-empty string")
    if spec.get("on") not in OPERATIONS:
        raise ValueError(f"`on` must be one of {', '.join(OPERATIONS)}")
    times = spec.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ValueError("`times` must be a whole number of at least 1")
    fault = {"stack": spec["stack"], "resource": spec["resource"], "on": spec["on"], "times": times}
    if "late_object" in spec:
        if spec["on"] != "delete":
            raise ValueError("`late_object` goes with `on`: `delete` (of a bucket)")
        if not isinstance(spec["late_object"], str) or not spec["late_object"]:
            raise ValueError("`late_object` must be a non-empty object key")
        fault["late_object"] = spec["late_object"]
    with _lock:
        _armed.append(fault)
        return dict(fault)


def take(stack, resource, on):
    """The fault armed for `on` of `resource` in `stack`, if any, counted as used once."""
    with _lock:
        for fault in _armed:
            if (fault["stack"], fault["resource"], fault["on"]) == (stack, resource, on):
                fault["times"] -= 1
                if fault["times"] == 0:
                    _armed.remove(fault)
                return dict(fault)
    return None


def listing():
    with _lock:
        return [dict(fault) for fault in _armed]


def clear():
    with _lock:
        _armed.clear()
