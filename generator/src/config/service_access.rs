//! What a Fargate service reaches beyond the kit: how its private subnets reach AWS
//! (`[service.network]`), the containers' extra variables, secrets and writable paths
//! (`[service.container]`), and its role's extra permissions (`[service.task_role]`).

use std::sync::Arc;

use toml::Spanned;

use super::checks::{Checker, Located};
use super::diagnostic::{Place, SourceFile};
use super::model::{
    Container, Egress, EgressDestination, EgressRule, Network, PolicyStatement, TaskRole,
};
use super::raw::{RawContainer, RawEgressRule, RawNetwork, RawStatement, RawTaskRole};

/// ECS takes five security groups per task; the kit's own is one of them.
const MAX_TASK_SECURITY_GROUPS: usize = 4;

fn loc<T: Clone>(s: &Spanned<T>, file: &Arc<SourceFile>) -> Located<T> {
    Located::from_spanned(s, file)
}

fn place<T>(s: &Spanned<T>, file: &Arc<SourceFile>) -> Place {
    Place::new(file, s.span())
}

fn ids(
    c: &mut Checker,
    list: &Option<Spanned<Vec<Spanned<String>>>>,
    file: &Arc<SourceFile>,
    key: &str,
    prefix: &str,
    example: &str,
) -> Vec<String> {
    let Some(list) = list else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for id in list.get_ref() {
        let v = id.get_ref();
        if !v.starts_with(prefix) || !v[prefix.len()..].bytes().all(|b| b.is_ascii_hexdigit()) {
            c.error(
                &place(id, file),
                format!("`{key}`: `{v}` is not a {prefix}… id"),
                format!("ids look like `{example}`"),
            );
        } else if out.contains(v) {
            c.error(
                &place(id, file),
                format!("`{key}` lists `{v}` twice"),
                "remove one",
            );
        } else {
            out.push(v.clone());
        }
    }
    out
}

pub(super) fn network(
    c: &mut Checker,
    raw: &Option<Spanned<RawNetwork>>,
    table: &Place,
    file: &Arc<SourceFile>,
) -> Network {
    let fallback = Network {
        egress: Egress::Nat,
        private_route_table_ids: Vec::new(),
        task_security_group_ids: Vec::new(),
        task_egress: Vec::new(),
    };
    let Some(raw) = raw else {
        c.error(
            table,
            "`service` with `mode = \"fargate\"` has no `[service.network]`",
            "the functions and tasks run in the private subnets and call AWS from there: add `[service.network]` with `egress = \"vpc-endpoints\"` (the kit creates the endpoints; give `private_route_table_ids`) or `egress = \"nat\"` (deploy checks that each private subnet routes to a NAT)",
        );
        return fallback;
    };
    let net_place = place(raw, file);
    let raw = raw.get_ref();
    let egress = match &raw.egress {
        None => {
            c.error(
                &net_place,
                "`[service.network]` has no `egress`",
                "add `egress = \"vpc-endpoints\"` or `egress = \"nat\"`",
            );
            Egress::Nat
        }
        Some(e) => match c.choice(
            &loc(e, file),
            "service.network.egress",
            &["vpc-endpoints", "nat"],
        ) {
            Some("vpc-endpoints") => Egress::VpcEndpoints,
            _ => Egress::Nat,
        },
    };
    let private_route_table_ids = ids(
        c,
        &raw.private_route_table_ids,
        file,
        "service.network.private_route_table_ids",
        "rtb-",
        "rtb-0123456789abcdef0",
    );
    match (egress, &raw.private_route_table_ids) {
        (Egress::VpcEndpoints, None) => c.error(
            &net_place,
            "`egress = \"vpc-endpoints\"` needs `private_route_table_ids`",
            "the S3 and DynamoDB gateway endpoints join the private subnets' route tables: list each one (`aws ec2 describe-route-tables --filters Name=association.subnet-id,Values=<subnet>`); deploy checks that every private subnet uses one of them",
        ),
        (Egress::Nat, Some(r)) => c.error(
            &place(r, file),
            "`private_route_table_ids` only applies to `egress = \"vpc-endpoints\"`",
            "with a NAT, deploy finds each private subnet's route table itself; remove the key",
        ),
        _ => {}
    }
    let task_security_group_ids = ids(
        c,
        &raw.task_security_group_ids,
        file,
        "service.network.task_security_group_ids",
        "sg-",
        "sg-0123456789abcdef0",
    );
    if task_security_group_ids.len() > MAX_TASK_SECURITY_GROUPS {
        if let Some(list) = &raw.task_security_group_ids {
            c.error(
                &place(list, file),
                format!(
                    "`service.network.task_security_group_ids` lists {} groups; a task takes at most {MAX_TASK_SECURITY_GROUPS} beside the kit's",
                    task_security_group_ids.len()
                ),
                "ECS allows five security groups per task",
            );
        }
    }
    let task_egress = raw
        .task_egress
        .iter()
        .flatten()
        .filter_map(|r| egress_rule(c, r, file))
        .collect();
    Network {
        egress,
        private_route_table_ids,
        task_security_group_ids,
        task_egress,
    }
}

fn is_ipv4_cidr(v: &str) -> bool {
    let Some((ip, bits)) = v.split_once('/') else {
        return false;
    };
    ip.parse::<std::net::Ipv4Addr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 32)
}

fn egress_rule(
    c: &mut Checker,
    rule: &Spanned<RawEgressRule>,
    file: &Arc<SourceFile>,
) -> Option<EgressRule> {
    let at = place(rule, file);
    let r = rule.get_ref();
    let key = "service.network.task_egress";
    let protocol = match &r.protocol {
        None => "tcp".to_string(),
        Some(p) => c
            .choice(&loc(p, file), &format!("{key}.protocol"), &["tcp", "udp"])
            .unwrap_or("tcp")
            .to_string(),
    };
    let Some(port) = &r.port else {
        c.error(
            &at,
            format!("a `[[{key}]]` rule has no `port`"),
            "add `port = 5432` (and `to_port` for a range)",
        );
        return None;
    };
    let from = c.int_at(
        &loc(port, file),
        &format!("{key}.port"),
        1,
        65_535,
        "a TCP or UDP port",
    )?;
    let to = match &r.to_port {
        None => from,
        Some(t) => {
            let to = c.int_at(
                &loc(t, file),
                &format!("{key}.to_port"),
                1,
                65_535,
                "a TCP or UDP port",
            )?;
            if to < from {
                c.error(
                    &place(t, file),
                    format!("`{key}.to_port` ({to}) is below `port` ({from})"),
                    "a range goes from `port` up to `to_port`",
                );
                return None;
            }
            to
        }
    };
    let destinations = [
        r.cidr.as_ref().map(|v| ("cidr", v)),
        r.security_group_id
            .as_ref()
            .map(|v| ("security_group_id", v)),
        r.prefix_list_id.as_ref().map(|v| ("prefix_list_id", v)),
    ];
    let given: Vec<_> = destinations.into_iter().flatten().collect();
    let [(kind, value)] = given.as_slice() else {
        c.error(
            &at,
            format!("a `[[{key}]]` rule needs exactly one of `cidr`, `security_group_id` or `prefix_list_id`"),
            "say where the tasks may connect: `cidr = \"10.0.0.0/16\"`, or the database's `security_group_id`",
        );
        return None;
    };
    let v = value.get_ref().clone();
    let destination = match *kind {
        "cidr" => {
            if !is_ipv4_cidr(&v) {
                c.error(
                    &place(value, file),
                    format!("`{key}.cidr` `{v}` is not an IPv4 CIDR block"),
                    "write it as `10.0.0.0/16`",
                );
                return None;
            }
            if v.ends_with("/0") {
                c.error(&place(value, file), format!("`{key}.cidr` `{v}` opens the port to every address"), "name the network the tasks must reach, such as the database's subnet range or its security group");
                return None;
            }
            EgressDestination::Cidr(v)
        }
        "security_group_id" => {
            if !v.starts_with("sg-") {
                c.error(
                    &place(value, file),
                    format!("`{key}.security_group_id` `{v}` is not a security group id"),
                    "ids look like `sg-0123456789abcdef0`",
                );
                return None;
            }
            EgressDestination::SecurityGroupId(v)
        }
        _ => {
            if !v.starts_with("pl-") {
                c.error(
                    &place(value, file),
                    format!("`{key}.prefix_list_id` `{v}` is not a prefix list id"),
                    "ids look like `pl-0123456789abcdef0`",
                );
                return None;
            }
            EgressDestination::PrefixListId(v)
        }
    };
    let description = r
        .description
        .as_ref()
        .map(|d| d.get_ref().clone())
        .unwrap_or_else(|| format!("{} {from}-{to}", protocol.to_uppercase()));
    Some(EgressRule {
        description,
        protocol,
        from_port: from as u16,
        to_port: to as u16,
        destination,
    })
}

fn is_variable_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A secret or SSM parameter ARN as ECS takes it in `ValueFrom`.
fn is_secret_reference(v: &str) -> bool {
    let parts: Vec<&str> = v.split(':').collect();
    let arn = parts.len() >= 6 && parts[0] == "arn" && parts[1].starts_with("aws");
    arn && ((parts[2] == "secretsmanager" && parts[5] == "secret" && parts.len() >= 7)
        || (parts[2] == "ssm" && parts[5].starts_with("parameter/")))
}

pub(super) fn container(
    c: &mut Checker,
    raw: &Option<Spanned<RawContainer>>,
    file: &Arc<SourceFile>,
) -> Container {
    let mut out = Container {
        environment: Vec::new(),
        secrets: Vec::new(),
        writable_paths: vec!["/tmp".to_string()],
    };
    let Some(raw) = raw else {
        return out;
    };
    let raw = raw.get_ref();
    let name_ok = |c: &mut Checker, name: &Spanned<String>, key: &str| -> bool {
        let n = name.get_ref();
        if !is_variable_name(n) {
            c.error(
                &place(name, file),
                format!("`{key}`: `{n}` is not a variable name"),
                "letters, digits and `_`, not starting with a digit",
            );
            return false;
        }
        if n.starts_with("MICROPROCESS_") {
            c.error(&place(name, file), format!("`{key}`: `{n}` is one of the kit's own variables"), "names starting with `MICROPROCESS_` are set by the kit (side, environment, signing secret); choose another name");
            return false;
        }
        true
    };
    for (name, value) in raw.environment.iter().flat_map(|m| m.get_ref()) {
        if name_ok(c, name, "service.container.environment") {
            out.environment
                .push((name.get_ref().clone(), value.get_ref().clone()));
        }
    }
    for (name, value) in raw.secrets.iter().flat_map(|m| m.get_ref()) {
        if !name_ok(c, name, "service.container.secrets") {
            continue;
        }
        if out.environment.iter().any(|(n, _)| n == name.get_ref()) {
            c.error(
                &place(name, file),
                format!("`{}` is both a variable and a secret", name.get_ref()),
                "keep it in one of `environment` and `secrets`",
            );
            continue;
        }
        if !is_secret_reference(value.get_ref()) {
            c.error(&place(value, file), format!("`service.container.secrets.{}` is not a Secrets Manager secret or SSM parameter ARN", name.get_ref()), "write the ARN, e.g. `arn:aws:secretsmanager:<region>:<account>:secret:<name>-AbCdEf` (a `:json-key::` may follow) or `arn:aws:ssm:<region>:<account>:parameter/<name>`; the tasks' execution role may read exactly these");
            continue;
        }
        out.secrets
            .push((name.get_ref().clone(), value.get_ref().clone()));
    }
    for p in raw.writable_paths.iter().flat_map(|l| l.get_ref()) {
        let v = p.get_ref();
        let bad = !v.starts_with('/')
            || v == "/"
            || v.ends_with('/')
            || v.split('/').any(|s| s == ".." || s == ".")
            || v.contains("//");
        if bad {
            c.error(
                &place(p, file),
                format!("`service.container.writable_paths`: `{v}` is not an absolute directory"),
                "write a path such as `/var/cache/app`; `/tmp` is always writable",
            );
        } else if out.writable_paths.contains(v) {
            c.error(
                &place(p, file),
                format!("`service.container.writable_paths` lists `{v}` twice"),
                "`/tmp` is always writable; remove the repeat",
            );
        } else {
            out.writable_paths.push(v.clone());
        }
    }
    out
}

/// `service:Action`, with `*` only where the statement denies.
fn action_problem(action: &str, allow: bool) -> Option<String> {
    let Some((service, name)) = action.split_once(':') else {
        return Some("is not `service:Action`".into());
    };
    let service_ok = !service.is_empty()
        && service
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?');
    if !service_ok || !name_ok {
        return Some("is not `service:Action`".into());
    }
    if allow && (name.contains('*') || name.contains('?')) {
        return Some("allows a wildcard action".into());
    }
    None
}

pub(super) fn task_role(
    c: &mut Checker,
    raw: &Option<Spanned<RawTaskRole>>,
    file: &Arc<SourceFile>,
) -> TaskRole {
    let mut out = TaskRole {
        managed_policy_arns: Vec::new(),
        statements: Vec::new(),
    };
    let Some(raw) = raw else {
        return out;
    };
    let raw = raw.get_ref();
    for arn in raw.managed_policy_arns.iter().flat_map(|l| l.get_ref()) {
        let v = arn.get_ref();
        let parts: Vec<&str> = v.splitn(6, ':').collect();
        let shaped = parts.len() == 6
            && parts[0] == "arn"
            && parts[2] == "iam"
            && parts[5].starts_with("policy/");
        if !shaped {
            c.error(
                &place(arn, file),
                format!("`service.task_role.managed_policy_arns`: `{v}` is not an IAM policy ARN"),
                "write `arn:aws:iam::<account>:policy/<name>`",
            );
        } else if parts[4] == "aws" {
            c.error(&place(arn, file), format!("`service.task_role.managed_policy_arns`: `{v}` is an AWS managed policy"), "AWS managed policies allow wildcard actions (such as `s3:Get*`), which the kit never grants: write the actions the service needs in `[[service.task_role.statements]]`, or attach a policy of your own account");
        } else if out.managed_policy_arns.contains(v) {
            c.error(
                &place(arn, file),
                format!("`service.task_role.managed_policy_arns` lists `{v}` twice"),
                "remove one",
            );
        } else {
            out.managed_policy_arns.push(v.clone());
        }
    }
    for (i, st) in raw.statements.iter().flatten().enumerate() {
        if let Some(s) = statement(c, st, file, i) {
            out.statements.push(s);
        }
    }
    out
}

fn statement(
    c: &mut Checker,
    st: &Spanned<RawStatement>,
    file: &Arc<SourceFile>,
    index: usize,
) -> Option<PolicyStatement> {
    let key = "service.task_role.statements";
    let r = st.get_ref();
    let effect = match &r.effect {
        None => "Allow",
        Some(e) => c.choice(&loc(e, file), &format!("{key}.effect"), &["Allow", "Deny"])?,
    };
    let allow = effect == "Allow";
    let mut ok = true;
    if r.actions.get_ref().is_empty() {
        c.error(
            &place(&r.actions, file),
            format!("statement {} of `{key}` has no actions", index + 1),
            "list each action, e.g. `actions = [\"dynamodb:GetItem\"]`",
        );
        ok = false;
    }
    for a in r.actions.get_ref() {
        if let Some(problem) = action_problem(a.get_ref(), allow) {
            let hint = if problem.contains("wildcard") {
                "name each action the service calls, e.g. `dynamodb:GetItem`, `dynamodb:Query`; the kit grants no wildcard action"
            } else {
                "write actions as `service:Action`, e.g. `s3:GetObject`"
            };
            c.error(
                &place(a, file),
                format!("`{key}`: `{}` {problem}", a.get_ref()),
                hint,
            );
            ok = false;
        }
    }
    if r.resources.get_ref().is_empty() {
        c.error(
            &place(&r.resources, file),
            format!("statement {} of `{key}` has no resources", index + 1),
            "list the ARNs it applies to",
        );
        ok = false;
    }
    for res in r.resources.get_ref() {
        let v = res.get_ref();
        if !(v.starts_with("arn:") || v == "*") {
            c.error(
                &place(res, file),
                format!("`{key}`: resource `{v}` is not an ARN"),
                "write the resource's ARN, e.g. `arn:aws:dynamodb:<region>:<account>:table/<name>`",
            );
            ok = false;
        }
    }
    let sid = r.sid.as_ref().map(|s| s.get_ref().clone());
    if let Some(s) = &sid {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            c.error(
                &place(r.sid.as_ref()?, file),
                format!("`{key}.sid` `{s}` may hold only letters and digits"),
                "IAM statement ids are alphanumeric",
            );
            ok = false;
        }
    }
    ok.then(|| PolicyStatement {
        sid,
        effect: effect.to_string(),
        actions: r
            .actions
            .get_ref()
            .iter()
            .map(|a| a.get_ref().clone())
            .collect(),
        resources: r
            .resources
            .get_ref()
            .iter()
            .map(|a| a.get_ref().clone())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_named_and_only_a_deny_takes_a_wildcard() {
        assert_eq!(action_problem("dynamodb:GetItem", true), None);
        assert_eq!(action_problem("s3:Get*", false), None);
        assert!(action_problem("s3:Get*", true)
            .unwrap()
            .contains("wildcard"));
        assert!(action_problem("*", true).is_some());
        assert!(action_problem("s3:*", true).is_some());
        assert!(action_problem("S3:GetObject", true).is_some());
    }

    #[test]
    fn secrets_come_from_secrets_manager_or_ssm() {
        assert!(is_secret_reference(
            "arn:aws:secretsmanager:ap-southeast-2:333333333333:secret:db-AbCdEf"
        ));
        assert!(is_secret_reference(
            "arn:aws:secretsmanager:ap-southeast-2:333333333333:secret:db-AbCdEf:password::"
        ));
        assert!(is_secret_reference(
            "arn:aws:ssm:ap-southeast-2:333333333333:parameter/scores/db-host"
        ));
        assert!(!is_secret_reference("db-password"));
        assert!(!is_secret_reference("arn:aws:s3:::bucket/secret"));
    }
}
