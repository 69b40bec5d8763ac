//! What is deployed in the emulator, read back the way the tests compare it: stacks with
//! their status and event count, queue, function and table names.

use aws_config::SdkConfig;

/// Stack name → (status, number of events).
pub async fn stacks(config: &SdkConfig) -> Vec<(String, String, usize)> {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    let mut all = Vec::new();
    for s in cfn.describe_stacks().send().await.unwrap().stacks() {
        let name = s.stack_name().unwrap().to_string();
        let events = cfn
            .describe_stack_events()
            .stack_name(&name)
            .send()
            .await
            .unwrap()
            .stack_events()
            .len();
        all.push((name, s.stack_status().unwrap().as_str().to_string(), events));
    }
    all.sort();
    all
}

pub async fn queue_names(config: &SdkConfig) -> Vec<String> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let mut names: Vec<String> = sqs
        .list_queues()
        .send()
        .await
        .unwrap()
        .queue_urls()
        .iter()
        .map(|u| u.rsplit('/').next().unwrap().to_string())
        .collect();
    names.sort();
    names
}

pub async fn function_names(config: &SdkConfig) -> Vec<String> {
    let lambda = aws_sdk_lambda::Client::new(config);
    let mut names: Vec<String> = lambda
        .list_functions()
        .send()
        .await
        .unwrap()
        .functions()
        .iter()
        .map(|f| f.function_name().unwrap().to_string())
        .collect();
    names.sort();
    names
}

pub async fn table_names(config: &SdkConfig) -> Vec<String> {
    aws_sdk_dynamodb::Client::new(config)
        .list_tables()
        .send()
        .await
        .unwrap()
        .table_names()
        .to_vec()
}
