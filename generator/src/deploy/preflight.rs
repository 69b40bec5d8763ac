//! What a Fargate environment needs from the account, checked before any stack is touched:
//! a first deploy that would fail on these fails here, with the subnet, certificate or zone
//! named, instead of an hour later in a rollback.
//!
//! - **Routes.** With `egress = "nat"`, each private subnet's route table (its own, else the
//!   VPC's main one) has an active default route to a NAT gateway, a NAT instance, an
//!   appliance's interface or a transit gateway. With `egress = "vpc-endpoints"`, each private
//!   subnet uses one of the route tables the gateway endpoints join.
//! - **Certificates.** Each listener's ACM certificate is issued and covers its host.
//! - **The private zone.** The internal queue host's zone is private and attached to the VPC.
//! - **Managed policies.** Each policy attached to the task role allows no wildcard action
//!   (the kit's rule for its own roles; config refuses AWS managed policies outright).

use serde::{Deserialize, Serialize};

use super::DeployError;
use crate::config::model::{AlbLayout, Egress, Environment, Service};

/// What the checks need, carried in the manifest so a bundle deployed from outside the
/// project (`--dist`) is checked too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preflight {
    pub vpc_id: String,
    pub private_subnet_ids: Vec<String>,
    pub egress: Egress,
    #[serde(default)]
    pub route_table_ids: Vec<String>,
    /// Certificate ARN → the hosts it must cover.
    pub certificates: Vec<(String, Vec<String>)>,
    /// The internal queue host's zone, which must be private to the VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_zone_id: Option<String>,
    /// Policies attached to the task role from `[service.task_role]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_policy_arns: Vec<String>,
}

impl Preflight {
    pub fn of(env: &Environment) -> Option<Preflight> {
        let Service::Fargate(f) = &env.service else {
            return None;
        };
        let mut certificates: Vec<(String, Vec<String>)> = Vec::new();
        for (arn, host) in [
            (&f.certificate_arn, &f.live_host),
            (&f.queue_certificate_arn, &f.queue_host),
        ] {
            match certificates.iter_mut().find(|(a, _)| a == arn) {
                Some((_, hosts)) => hosts.push(host.clone()),
                None => certificates.push((arn.clone(), vec![host.clone()])),
            }
        }
        Some(Preflight {
            vpc_id: f.vpc_id.clone(),
            private_subnet_ids: f.private_subnet_ids.clone(),
            egress: f.network.egress,
            route_table_ids: f.network.private_route_table_ids.clone(),
            certificates,
            private_zone_id: (f.layout == AlbLayout::InternalQueue)
                .then(|| f.queue_hosted_zone_id.clone()),
            managed_policy_arns: f.task_role.managed_policy_arns.clone(),
        })
    }
}

/// Whether `pattern` (a certificate's name, maybe `*.example.com`) covers `host`: a
/// wildcard stands for exactly one leftmost label.
pub fn covers(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(rest) => host
            .split_once('.')
            .is_some_and(|(label, parent)| !label.is_empty() && parent == rest),
        None => pattern == host,
    }
}

/// Every problem found; empty when the account is ready.
pub async fn check(
    config: &aws_config::SdkConfig,
    p: &Preflight,
) -> Result<Vec<String>, DeployError> {
    let mut problems = routes(config, p).await?;
    problems.extend(certificates(config, p).await?);
    problems.extend(private_zone(config, p).await?);
    problems.extend(managed_policies(config, p).await?);
    Ok(problems)
}

/// `%XX` escapes decoded, as IAM returns policy documents.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What in a policy document allows more than named actions.
pub fn wildcard_allows(document: &serde_json::Value) -> Vec<String> {
    let as_list = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        match v {
            serde_json::Value::Array(a) => a.clone(),
            serde_json::Value::Null => Vec::new(),
            other => vec![other.clone()],
        }
    };
    let mut found = Vec::new();
    for st in as_list(&document["Statement"]) {
        if st["Effect"] != "Allow" {
            continue;
        }
        if !st["NotAction"].is_null() {
            found.push("`NotAction` in an Allow".to_string());
        }
        for a in as_list(&st["Action"]) {
            let a = a.as_str().unwrap_or_default();
            if a.contains('*') || a.contains('?') {
                found.push(format!("`{a}`"));
            }
        }
    }
    found
}

async fn managed_policies(
    config: &aws_config::SdkConfig,
    p: &Preflight,
) -> Result<Vec<String>, DeployError> {
    use aws_sdk_iam::error::ProvideErrorMetadata;
    let iam = aws_sdk_iam::Client::new(config);
    let failed = |action: &str, message: Option<&str>| DeployError::Aws {
        stack: "(checks before deploy)".into(),
        action: action.into(),
        detail: message.unwrap_or("no message").to_string(),
    };
    let mut problems = Vec::new();
    for arn in &p.managed_policy_arns {
        let policy = match iam.get_policy().policy_arn(arn).send().await {
            Ok(out) => out,
            Err(e) if e.code() == Some("NoSuchEntity") => {
                problems.push(format!("managed policy `{arn}` does not exist"));
                continue;
            }
            Err(e) => return Err(failed("GetPolicy", e.message())),
        };
        let version = policy
            .policy()
            .and_then(|p| p.default_version_id())
            .unwrap_or("v1");
        let out = iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(version)
            .send()
            .await
            .map_err(|e| failed("GetPolicyVersion", e.message()))?;
        let text = out
            .policy_version()
            .and_then(|v| v.document())
            .map(percent_decode)
            .unwrap_or_default();
        let document: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let wild = wildcard_allows(&document);
        if !wild.is_empty() {
            problems.push(format!(
                "managed policy `{arn}` (version {version}) allows {}: the kit grants no wildcard action; name each action the service calls",
                wild.join(", ")
            ));
        }
    }
    Ok(problems)
}

fn aws_error<E>(action: &str, e: &aws_sdk_ec2::error::SdkError<E>) -> DeployError
where
    E: std::error::Error + aws_sdk_ec2::error::ProvideErrorMetadata + 'static,
{
    use aws_sdk_ec2::error::ProvideErrorMetadata;
    let detail = match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        _ => aws_sdk_ec2::error::DisplayErrorContext(e).to_string(),
    };
    DeployError::Aws {
        stack: "(checks before deploy)".into(),
        action: action.into(),
        detail,
    }
}

/// The route table a subnet uses: its own association, else the VPC's main table.
async fn route_table_of(
    ec2: &aws_sdk_ec2::Client,
    vpc_id: &str,
    subnet: &str,
) -> Result<Option<aws_sdk_ec2::types::RouteTable>, DeployError> {
    use aws_sdk_ec2::types::Filter;
    let filter = |name: &str, value: &str| Filter::builder().name(name).values(value).build();
    let own = ec2
        .describe_route_tables()
        .filters(filter("association.subnet-id", subnet))
        .send()
        .await
        .map_err(|e| aws_error("DescribeRouteTables", &e))?;
    if let Some(t) = own.route_tables().first() {
        return Ok(Some(t.clone()));
    }
    let main = ec2
        .describe_route_tables()
        .filters(filter("vpc-id", vpc_id))
        .filters(filter("association.main", "true"))
        .send()
        .await
        .map_err(|e| aws_error("DescribeRouteTables", &e))?;
    Ok(main.route_tables().first().cloned())
}

async fn routes(config: &aws_config::SdkConfig, p: &Preflight) -> Result<Vec<String>, DeployError> {
    use aws_sdk_ec2::types::RouteState;
    let ec2 = aws_sdk_ec2::Client::new(config);
    let mut problems = Vec::new();
    for subnet in &p.private_subnet_ids {
        let Some(table) = route_table_of(&ec2, &p.vpc_id, subnet).await? else {
            problems.push(format!(
                "private subnet `{subnet}` has no route table in `{}` (is it in that VPC?)",
                p.vpc_id
            ));
            continue;
        };
        let table_id = table.route_table_id().unwrap_or_default();
        match p.egress {
            Egress::Nat => {
                let default = table.routes().iter().find(|r| {
                    r.destination_cidr_block() == Some("0.0.0.0/0")
                        && r.state() != Some(&RouteState::Blackhole)
                });
                let through = default.and_then(|r| {
                    r.nat_gateway_id()
                        .or(r.instance_id())
                        .or(r.network_interface_id())
                        .or(r.transit_gateway_id())
                });
                match (default, through) {
                    (_, Some(_)) => {}
                    (Some(r), None) => problems.push(format!(
                        "private subnet `{subnet}` (route table `{table_id}`) sends its default route to `{}`, not to a NAT: tasks and functions there get no public address, so they cannot reach AWS that way",
                        r.gateway_id().unwrap_or("nowhere")
                    )),
                    (None, None) => problems.push(format!(
                        "private subnet `{subnet}` (route table `{table_id}`) has no default route to a NAT: the functions and tasks there cannot reach SQS, DynamoDB, Secrets Manager, Lambda, ECR or CloudWatch Logs"
                    )),
                }
            }
            Egress::VpcEndpoints => {
                if !p.route_table_ids.iter().any(|t| t == table_id) {
                    problems.push(format!(
                        "private subnet `{subnet}` uses route table `{table_id}`, which `private_route_table_ids` does not list: the S3 and DynamoDB gateway endpoints would not serve it"
                    ));
                }
            }
        }
    }
    Ok(problems)
}

async fn certificates(
    config: &aws_config::SdkConfig,
    p: &Preflight,
) -> Result<Vec<String>, DeployError> {
    use aws_sdk_acm::error::ProvideErrorMetadata;
    let acm = aws_sdk_acm::Client::new(config);
    let mut problems = Vec::new();
    for (arn, hosts) in &p.certificates {
        let out = match acm.describe_certificate().certificate_arn(arn).send().await {
            Ok(out) => out,
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                problems.push(format!(
                    "certificate `{arn}` does not exist in this account and region"
                ));
                continue;
            }
            Err(e) => {
                return Err(DeployError::Aws {
                    stack: "(checks before deploy)".into(),
                    action: "DescribeCertificate".into(),
                    detail: e.message().unwrap_or("no message").to_string(),
                })
            }
        };
        let Some(cert) = out.certificate() else {
            problems.push(format!("certificate `{arn}` could not be read"));
            continue;
        };
        let status = cert
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        if status != "ISSUED" {
            problems.push(format!("certificate `{arn}` is {status}, not ISSUED: a listener cannot use it until it is validated"));
        }
        let mut names: Vec<&str> = cert
            .subject_alternative_names()
            .iter()
            .map(String::as_str)
            .collect();
        names.extend(cert.domain_name());
        for host in hosts {
            if !names.iter().any(|n| covers(n, host)) {
                problems.push(format!(
                    "certificate `{arn}` does not cover `{host}` (it names {}): TLS to that host would fail",
                    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    Ok(problems)
}

async fn private_zone(
    config: &aws_config::SdkConfig,
    p: &Preflight,
) -> Result<Vec<String>, DeployError> {
    use aws_sdk_route53::error::ProvideErrorMetadata;
    let Some(zone) = &p.private_zone_id else {
        return Ok(Vec::new());
    };
    let route53 = aws_sdk_route53::Client::new(config);
    let out = match route53.get_hosted_zone().id(zone).send().await {
        Ok(out) => out,
        Err(e) if e.code() == Some("NoSuchHostedZone") => {
            return Ok(vec![format!(
                "hosted zone `{zone}` (the queue host's) does not exist"
            )]);
        }
        Err(e) => {
            return Err(DeployError::Aws {
                stack: "(checks before deploy)".into(),
                action: "GetHostedZone".into(),
                detail: e.message().unwrap_or("no message").to_string(),
            })
        }
    };
    let private = out
        .hosted_zone()
        .and_then(|z| z.config())
        .is_some_and(|c| c.private_zone());
    if !private {
        return Ok(vec![format!("hosted zone `{zone}` is public: the internal queue host's record would publish its ALB's private addresses; use a private zone associated with `{}`", p.vpc_id)]);
    }
    if !out
        .vpcs()
        .iter()
        .any(|v| v.vpc_id() == Some(p.vpc_id.as_str()))
    {
        return Ok(vec![format!("private hosted zone `{zone}` is not associated with `{}`: the functions there could not resolve the queue host", p.vpc_id)]);
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::{covers, percent_decode, wildcard_allows};

    #[test]
    fn a_policy_document_is_read_as_iam_returns_it() {
        let doc = percent_decode("%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGet%2A%22%7D%5D%7D");
        let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(wildcard_allows(&v), ["`s3:Get*`"]);
        let named =
            serde_json::json!({"Statement": {"Effect": "Allow", "Action": ["s3:GetObject"]}});
        assert!(wildcard_allows(&named).is_empty());
        let deny = serde_json::json!({"Statement": [{"Effect": "Deny", "Action": "s3:*"}, {"Effect": "Allow", "NotAction": "iam:CreateUser"}]});
        assert_eq!(wildcard_allows(&deny), ["`NotAction` in an Allow"]);
    }

    #[test]
    fn a_wildcard_covers_one_label() {
        assert!(covers("scores.example.com", "scores.example.com"));
        assert!(covers("*.example.com", "scores-queue.example.com"));
        assert!(covers("*.Example.com", "scores.example.COM"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("scores.example.com", "scores-queue.example.com"));
    }
}
