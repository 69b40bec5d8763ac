//! The account checks `deploy` runs before it touches a Fargate environment's stacks
//! (`generator/src/deploy/preflight.rs`), against networks, certificates and zones made in
//! the emulator: a subnet that routes to a NAT passes and one without is named; a subnet
//! outside the endpoints' route tables is named; a certificate must be issued and cover its
//! host; the internal queue host's zone must be private to the VPC; a policy attached to
//! the task role may allow no wildcard action.

use aws_config::SdkConfig;
use aws_sdk_ec2::types::Filter;
use kit_tests::moto::{sdk_config, MotoServer};
use microprocess_kit::config::model::Egress;
use microprocess_kit::deploy::preflight::{check, Preflight};

struct Network {
    vpc: String,
    /// Routes to a NAT gateway.
    nat: String,
    /// Has a route table of its own with only the local route.
    isolated: String,
    /// No route table of its own: the VPC's main table (local route only) applies.
    main: String,
    nat_table: String,
}

async fn network(config: &SdkConfig) -> Network {
    let ec2 = aws_sdk_ec2::Client::new(config);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.20.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string();
    let subnet = |cidr: &'static str| {
        let ec2 = ec2.clone();
        let vpc = vpc.clone();
        async move {
            ec2.create_subnet()
                .vpc_id(vpc)
                .cidr_block(cidr)
                .send()
                .await
                .unwrap()
                .subnet()
                .unwrap()
                .subnet_id()
                .unwrap()
                .to_string()
        }
    };
    let public = subnet("10.20.0.0/24").await;
    let nat = subnet("10.20.1.0/24").await;
    let isolated = subnet("10.20.2.0/24").await;
    let main = subnet("10.20.3.0/24").await;
    let allocation = ec2
        .allocate_address()
        .send()
        .await
        .unwrap()
        .allocation_id()
        .unwrap()
        .to_string();
    let gateway = ec2
        .create_nat_gateway()
        .subnet_id(&public)
        .allocation_id(allocation)
        .send()
        .await
        .unwrap()
        .nat_gateway()
        .unwrap()
        .nat_gateway_id()
        .unwrap()
        .to_string();
    let table = |subnet: String| {
        let ec2 = ec2.clone();
        let vpc = vpc.clone();
        async move {
            let id = ec2
                .create_route_table()
                .vpc_id(vpc)
                .send()
                .await
                .unwrap()
                .route_table()
                .unwrap()
                .route_table_id()
                .unwrap()
                .to_string();
            ec2.associate_route_table()
                .route_table_id(&id)
                .subnet_id(subnet)
                .send()
                .await
                .unwrap();
            id
        }
    };
    let nat_table = table(nat.clone()).await;
    ec2.create_route()
        .route_table_id(&nat_table)
        .destination_cidr_block("0.0.0.0/0")
        .nat_gateway_id(gateway)
        .send()
        .await
        .unwrap();
    table(isolated.clone()).await;
    // The main table has the local route only.
    let main_table = ec2
        .describe_route_tables()
        .filters(Filter::builder().name("vpc-id").values(&vpc).build())
        .filters(
            Filter::builder()
                .name("association.main")
                .values("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(main_table.route_tables().len(), 1);
    Network {
        vpc,
        nat,
        isolated,
        main,
        nat_table,
    }
}

fn preflight(net: &Network, egress: Egress, subnets: &[&String]) -> Preflight {
    Preflight {
        vpc_id: net.vpc.clone(),
        private_subnet_ids: subnets.iter().map(|s| s.to_string()).collect(),
        egress,
        route_table_ids: vec![net.nat_table.clone()],
        certificates: Vec::new(),
        private_zone_id: None,
        managed_policy_arns: Vec::new(),
    }
}

#[tokio::test]
async fn a_subnet_without_a_route_to_a_nat_is_named() {
    let moto = MotoServer::start();
    let config = sdk_config(moto.endpoint()).await;
    let net = network(&config).await;

    let ready = check(&config, &preflight(&net, Egress::Nat, &[&net.nat]))
        .await
        .unwrap();
    assert_eq!(ready, Vec::<String>::new());

    let problems = check(
        &config,
        &preflight(&net, Egress::Nat, &[&net.nat, &net.isolated, &net.main]),
    )
    .await
    .unwrap();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with(&format!(
            "private subnet `{}` (route table `rtb-",
            net.isolated
        )) && problems[0].contains("has no default route to a NAT"),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].starts_with(&format!("private subnet `{}`", net.main)),
        "the VPC's main table applies to a subnet without its own: {}",
        problems[1]
    );

    // With endpoints, every private subnet must use a table the gateway endpoints join.
    let problems = check(
        &config,
        &preflight(&net, Egress::VpcEndpoints, &[&net.nat, &net.isolated]),
    )
    .await
    .unwrap();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with(&format!("private subnet `{}` uses route table `rtb-", net.isolated))
            && problems[0].ends_with("which `private_route_table_ids` does not list: the S3 and DynamoDB gateway endpoints would not serve it"),
        "{}",
        problems[0]
    );
}

async fn certificate(config: &SdkConfig, domain: &str, alternatives: &[&str]) -> String {
    aws_sdk_acm::Client::new(config)
        .request_certificate()
        .domain_name(domain)
        .set_subject_alternative_names(Some(
            std::iter::once(domain)
                .chain(alternatives.iter().copied())
                .map(str::to_string)
                .collect(),
        ))
        .validation_method(aws_sdk_acm::types::ValidationMethod::Dns)
        .send()
        .await
        .unwrap()
        .certificate_arn()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn certificates_must_be_issued_and_cover_their_hosts() {
    // moto issues a requested certificate once it is this many seconds old: at once here.
    let moto = MotoServer::start_with(&[("MOTO_ACM_VALIDATION_WAIT", "0")]);
    let config = sdk_config(moto.endpoint()).await;
    let both = certificate(&config, "scores.example.com", &["*.example.com"]).await;
    let live_only = certificate(&config, "scores.example.com", &[]).await;
    let hosts = vec![
        "scores.example.com".to_string(),
        "scores-queue.example.com".to_string(),
    ];
    let p = |certificates: Vec<(String, Vec<String>)>| Preflight {
        vpc_id: "vpc-0".into(),
        private_subnet_ids: Vec::new(),
        egress: Egress::Nat,
        route_table_ids: Vec::new(),
        certificates,
        private_zone_id: None,
        managed_policy_arns: Vec::new(),
    };
    assert_eq!(
        check(&config, &p(vec![(both.clone(), hosts.clone())]))
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    let problems = check(&config, &p(vec![(live_only.clone(), hosts.clone())]))
        .await
        .unwrap();
    assert_eq!(
        problems,
        [format!("certificate `{live_only}` does not cover `scores-queue.example.com` (it names `scores.example.com`, `scores.example.com`): TLS to that host would fail")]
    );
    // A separate queue certificate is checked for its own host.
    let queue = certificate(&config, "scores-queue.example.com", &[]).await;
    let separate = vec![
        (live_only.clone(), vec![hosts[0].clone()]),
        (queue, vec![hosts[1].clone()]),
    ];
    assert_eq!(
        check(&config, &p(separate)).await.unwrap(),
        Vec::<String>::new()
    );
    let gone = format!("{}0", &both[..both.len() - 1]);
    let problems = check(&config, &p(vec![(gone.clone(), hosts)]))
        .await
        .unwrap();
    assert_eq!(
        problems,
        [format!(
            "certificate `{gone}` does not exist in this account and region"
        )]
    );
}

#[tokio::test]
async fn a_certificate_still_pending_validation_is_refused() {
    let moto = MotoServer::start();
    let config = sdk_config(moto.endpoint()).await;
    let pending = certificate(&config, "scores.example.com", &["*.example.com"]).await;
    let p = Preflight {
        vpc_id: "vpc-0".into(),
        private_subnet_ids: Vec::new(),
        egress: Egress::Nat,
        route_table_ids: Vec::new(),
        certificates: vec![(pending.clone(), vec!["scores.example.com".into()])],
        private_zone_id: None,
        managed_policy_arns: Vec::new(),
    };
    assert_eq!(
        check(&config, &p).await.unwrap(),
        [format!("certificate `{pending}` is PENDING_VALIDATION, not ISSUED: a listener cannot use it until it is validated")]
    );
}

#[tokio::test]
async fn the_queue_hosts_zone_must_be_private_to_the_vpc() {
    let moto = MotoServer::start();
    let config = sdk_config(moto.endpoint()).await;
    let net = network(&config).await;
    let route53 = aws_sdk_route53::Client::new(&config);
    let zone = |name: &'static str, vpc: Option<String>| {
        let route53 = route53.clone();
        async move {
            let mut call = route53
                .create_hosted_zone()
                .name(name)
                .caller_reference(format!("{name}-{}", vpc.is_some()));
            if let Some(v) = vpc {
                call = call
                    .vpc(
                        aws_sdk_route53::types::Vpc::builder()
                            .vpc_id(v)
                            .vpc_region(aws_sdk_route53::types::VpcRegion::UsEast1)
                            .build(),
                    )
                    .hosted_zone_config(
                        aws_sdk_route53::types::HostedZoneConfig::builder()
                            .private_zone(true)
                            .build(),
                    );
            }
            let id = call
                .send()
                .await
                .unwrap()
                .hosted_zone()
                .unwrap()
                .id()
                .to_string();
            id.trim_start_matches("/hostedzone/").to_string()
        }
    };
    let public = zone("example.com", None).await;
    let private = zone("internal.example.com", Some(net.vpc.clone())).await;
    let p = |zone: &str, vpc: &str| Preflight {
        vpc_id: vpc.to_string(),
        private_subnet_ids: Vec::new(),
        egress: Egress::Nat,
        route_table_ids: Vec::new(),
        certificates: Vec::new(),
        private_zone_id: Some(zone.to_string()),
        managed_policy_arns: Vec::new(),
    };
    assert_eq!(
        check(&config, &p(&private, &net.vpc)).await.unwrap(),
        Vec::<String>::new()
    );
    let problems = check(&config, &p(&public, &net.vpc)).await.unwrap();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with(&format!("hosted zone `{public}` is public: the internal queue host's record would publish its ALB's private addresses")),
        "{}",
        problems[0]
    );
    let problems = check(&config, &p(&private, "vpc-0f0f0f0f0f0f0f0f0"))
        .await
        .unwrap();
    assert_eq!(
        problems,
        [format!("private hosted zone `{private}` is not associated with `vpc-0f0f0f0f0f0f0f0f0`: the functions there could not resolve the queue host")]
    );
}

#[tokio::test]
async fn a_managed_policy_that_allows_a_wildcard_is_named() {
    let moto = MotoServer::start();
    let config = sdk_config(moto.endpoint()).await;
    let iam = aws_sdk_iam::Client::new(&config);
    let policy = |name: &'static str, document: serde_json::Value| {
        let iam = iam.clone();
        async move {
            iam.create_policy()
                .policy_name(name)
                .policy_document(document.to_string())
                .send()
                .await
                .unwrap()
                .policy()
                .unwrap()
                .arn()
                .unwrap()
                .to_string()
        }
    };
    let named = policy(
        "scores-data",
        serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/companies"}]}),
    )
    .await;
    let broad = policy(
        "scores-broad",
        serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}, {"Effect": "Deny", "Action": "iam:*", "Resource": "*"}]}),
    )
    .await;
    let p = Preflight {
        vpc_id: "vpc-0".into(),
        private_subnet_ids: Vec::new(),
        egress: Egress::Nat,
        route_table_ids: Vec::new(),
        certificates: Vec::new(),
        private_zone_id: None,
        managed_policy_arns: vec![named, broad.clone()],
    };
    assert_eq!(
        check(&config, &p).await.unwrap(),
        [format!("managed policy `{broad}` (version v1) allows `s3:*`: the kit grants no wildcard action; name each action the service calls")]
    );
}
