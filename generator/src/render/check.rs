//! Checks on a rendered template that CloudFormation would otherwise only report mid-deploy:
//! dangling references, invalid logical ids, and the service limits.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::plan::StackPlan;

/// CloudFormation's per-template limits.
pub const MAX_RESOURCES: usize = 500;
pub const MAX_TEMPLATE_BYTES: usize = 1_000_000;
pub const MAX_PARAMETERS: usize = 200;
pub const MAX_OUTPUTS: usize = 200;

const PSEUDO_PARAMETERS: &[&str] = &[
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

fn keys(template: &Value, section: &str) -> BTreeSet<String> {
    template
        .get(section)
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

pub fn is_logical_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Every problem found; empty when the template is sound.
pub fn check(template: &Value, plan: &StackPlan, bytes: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let resources = keys(template, "Resources");
    let parameters = keys(template, "Parameters");
    let conditions = keys(template, "Conditions");

    for section in [
        "Resources",
        "Parameters",
        "Outputs",
        "Conditions",
        "Mappings",
    ] {
        for id in keys(template, section) {
            if !is_logical_id(&id) {
                problems.push(format!(
                    "{section} id `{id}` is not alphanumeric (1 to 255 characters)"
                ));
            }
        }
    }
    if resources.is_empty() {
        problems.push("the template has no resources".into());
    }
    if resources.len() > MAX_RESOURCES {
        problems.push(format!(
            "{} resources, over CloudFormation's limit of {MAX_RESOURCES}",
            resources.len()
        ));
    }
    if parameters.len() > MAX_PARAMETERS {
        problems.push(format!(
            "{} parameters, over the limit of {MAX_PARAMETERS}",
            parameters.len()
        ));
    }
    let outputs = keys(template, "Outputs").len();
    if outputs > MAX_OUTPUTS {
        problems.push(format!(
            "{outputs} outputs, over the limit of {MAX_OUTPUTS}"
        ));
    }
    if bytes > MAX_TEMPLATE_BYTES {
        problems.push(format!(
            "{bytes} bytes, over CloudFormation's limit of {MAX_TEMPLATE_BYTES}"
        ));
    }
    let planned: BTreeSet<String> = plan.parameters.iter().map(|(n, _)| n.clone()).collect();
    for p in parameters.difference(&planned) {
        problems.push(format!(
            "parameter `{p}` has no source in the plan, so a deploy could not fill it"
        ));
    }
    for p in planned.difference(&parameters) {
        problems.push(format!(
            "the plan passes parameter `{p}`, which the template does not declare"
        ));
    }

    let mut refs = Refs::default();
    collect(template, &mut refs, &[]);
    let known = |name: &str| {
        resources.contains(name) || parameters.contains(name) || PSEUDO_PARAMETERS.contains(&name)
    };
    for (name, at) in &refs.refs {
        if !known(name) {
            problems.push(format!(
                "`Ref: {name}` at {at} names nothing in the template"
            ));
        }
    }
    for (name, at) in &refs.get_atts {
        if !resources.contains(name) {
            problems.push(format!(
                "`Fn::GetAtt` of `{name}` at {at} names no resource"
            ));
        }
    }
    for (name, at, vars) in &refs.subs {
        if !known(name) && !vars.contains(name) {
            problems.push(format!(
                "`${{{name}}}` in `Fn::Sub` at {at} names nothing in the template"
            ));
        }
    }
    for (name, at) in &refs.conditions {
        if !conditions.contains(name) {
            problems.push(format!("condition `{name}` at {at} is not declared"));
        }
    }
    for (name, at) in &refs.depends_on {
        if !resources.contains(name) {
            problems.push(format!("`DependsOn: {name}` at {at} names no resource"));
        }
    }
    problems
}

#[derive(Default)]
struct Refs {
    refs: Vec<(String, String)>,
    get_atts: Vec<(String, String)>,
    subs: Vec<(String, String, BTreeSet<String>)>,
    conditions: Vec<(String, String)>,
    depends_on: Vec<(String, String)>,
}

fn collect(v: &Value, out: &mut Refs, path: &[&str]) {
    let at = || path.join(".");
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                match (k.as_str(), child) {
                    ("Ref", Value::String(name)) => out.refs.push((name.clone(), at())),
                    ("Fn::GetAtt", Value::Array(parts)) => {
                        if let Some(Value::String(name)) = parts.first() {
                            out.get_atts.push((name.clone(), at()));
                        }
                    }
                    ("Fn::GetAtt", Value::String(dotted)) => {
                        let name = dotted.split('.').next().unwrap_or_default();
                        out.get_atts.push((name.to_string(), at()));
                    }
                    ("Fn::Sub", Value::String(s)) => sub_refs(s, &BTreeSet::new(), out, at()),
                    ("Fn::Sub", Value::Array(parts)) => {
                        let vars: BTreeSet<String> = parts
                            .get(1)
                            .and_then(Value::as_object)
                            .map(|m| m.keys().cloned().collect())
                            .unwrap_or_default();
                        if let Some(Value::String(s)) = parts.first() {
                            sub_refs(s, &vars, out, at());
                        }
                    }
                    ("Fn::If", Value::Array(parts)) => {
                        if let Some(Value::String(c)) = parts.first() {
                            out.conditions.push((c.clone(), at()));
                        }
                    }
                    ("Condition", Value::String(c))
                        if path.len() == 2 && path[0] == "Resources" =>
                    {
                        out.conditions.push((c.clone(), at()));
                    }
                    ("DependsOn", d) if path.len() == 2 && path[0] == "Resources" => {
                        let names: Vec<&str> = match d {
                            Value::String(s) => vec![s.as_str()],
                            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                            _ => vec![],
                        };
                        for n in names {
                            out.depends_on.push((n.to_string(), at()));
                        }
                    }
                    _ => {}
                }
                let mut next = path.to_vec();
                next.push(k);
                collect(child, out, &next);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect(item, out, path);
            }
        }
        _ => {}
    }
}

/// `${Name}` and `${Name.Attr}` in a `Fn::Sub` string; `${!Literal}` is not a reference.
fn sub_refs(s: &str, vars: &BTreeSet<String>, out: &mut Refs, at: String) {
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let inner = &after[..end];
        if !inner.starts_with('!') {
            let name = inner.split('.').next().unwrap_or_default().to_string();
            out.subs.push((name, at.clone(), vars.clone()));
        }
        rest = &after[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::StackKind;

    fn plan(params: &[&str]) -> StackPlan {
        StackPlan {
            name: "s".into(),
            kind: StackKind::Core,
            microprocess: None,
            template_file: "core.template.json".into(),
            parameters: params
                .iter()
                .map(|p| {
                    (
                        p.to_string(),
                        crate::plan::ParameterSource::Asset { asset: "x".into() },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn finds_dangling_references() {
        let t = json!({
            "Parameters": {"P": {"Type": "String"}},
            "Resources": {
                "A": {"Type": "AWS::SQS::Queue", "DependsOn": "Gone", "Properties": {
                    "QueueName": {"Fn::Sub": "${P}-${AWS::Region}-${Missing}-${!Literal}-${V}"},
                    "X": {"Fn::Sub": ["${V}", {"V": "1"}]},
                    "Y": {"Ref": "Nope"},
                    "Z": {"Fn::GetAtt": ["Ghost", "Arn"]},
                    "W": {"Fn::If": ["NoCond", 1, 2]}
                }},
                "bad-id": {"Type": "AWS::SQS::Queue"}
            }
        });
        let problems = check(&t, &plan(&["P"]), 10);
        let text = problems.join("\n");
        for needle in [
            "`${Missing}`",
            "`${V}`",
            "`Ref: Nope`",
            "`Fn::GetAtt` of `Ghost`",
            "condition `NoCond`",
            "`DependsOn: Gone`",
            "`bad-id`",
        ] {
            assert!(text.contains(needle), "{needle} not in {text}");
        }
        assert_eq!(problems.len(), 7, "{text}");
    }

    #[test]
    fn checks_limits_and_parameters() {
        let mut resources = serde_json::Map::new();
        for i in 0..=MAX_RESOURCES {
            resources.insert(format!("R{i}"), json!({"Type": "AWS::SQS::Queue"}));
        }
        let t = json!({"Parameters": {"Extra": {"Type": "String"}}, "Resources": resources});
        let problems = check(&t, &plan(&["Missing"]), MAX_TEMPLATE_BYTES + 1).join("\n");
        assert!(problems.contains("501 resources"));
        assert!(problems.contains("bytes, over"));
        assert!(problems.contains("`Extra` has no source"));
        assert!(problems.contains("`Missing`, which the template does not declare"));
    }
}
