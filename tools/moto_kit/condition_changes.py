"""A parameter that reaches a resource through a condition changes it (fix 13 of
`tools/emulator.py`).

moto's update (`ResourceMap.build_resource_diff`) modifies an unchanged resource when a
parameter it names with `Ref` changes value, but not when the parameter reaches it through
a condition (`Fn::If`, a `Condition` attribute): such a resource was never updated, where
CloudFormation resolves the template with the new values and updates what differs. The
kit's deletion protection is such a value (`DeletionProtectionEnabled: Fn::If
[DeletionProtected, true, false]`, the condition on the `DeletionProtection` parameter).
Here those resources join moto's list of resources to modify; moto's own update then runs.
"""

from moto.cloudformation import parsing

_diff = parsing.ResourceMap.build_resource_diff


def _conditions_used(definition):
    """Condition names a resource definition uses (`Fn::If`, `Condition`)."""
    found = set()
    if isinstance(definition, dict):
        for key, value in definition.items():
            if key == "Fn::If" and isinstance(value, list) and value:
                found.add(value[0])
            if key == "Condition" and isinstance(value, str):
                found.add(value)
            found |= _conditions_used(value)
    elif isinstance(definition, list):
        for item in definition:
            found |= _conditions_used(item)
    return found


def _parameters_of(condition, conditions, seen=None):
    """Parameters a condition depends on, through the conditions it names."""
    seen = seen or set()
    if condition in seen or condition not in conditions:
        return set()
    seen.add(condition)
    body = conditions[condition]
    names = set(parsing.get_references_from_template(body))
    for other in _conditions_used(body):
        names |= _parameters_of(other, conditions, seen)
    return names


def build_resource_diff(self, other_template, parameters=None):
    actions = _diff(self, other_template, parameters)
    if not parameters:
        return actions
    changed = {p for p in parameters if self.input_parameters.get(p) != parameters[p]}
    conditions = other_template.get("Conditions", {})
    for name, definition in other_template["Resources"].items():
        if name not in self._resource_json_map or name in actions["Modify"]:
            continue
        used = _conditions_used(definition)
        if any(changed & _parameters_of(c, conditions) for c in used):
            actions["Modify"].append(name)
    return actions


def install():
    parsing.ResourceMap.build_resource_diff = build_resource_diff
