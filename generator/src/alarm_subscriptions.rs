//! Whether anyone hears the alarms: an e-mail subscription to the alarm topic delivers
//! nothing until its owner follows the link in AWS's confirmation message, and AWS says so
//! only in the subscription list. `deploy` and `status` say it too.

use aws_sdk_sns::error::ProvideErrorMetadata;

/// The endpoints (e-mail addresses) of the topic's subscriptions still awaiting
/// confirmation.
pub async fn unconfirmed(
    config: &aws_config::SdkConfig,
    topic_arn: &str,
) -> Result<Vec<String>, String> {
    let sns = aws_sdk_sns::Client::new(config);
    let mut pending = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = sns
            .list_subscriptions_by_topic()
            .topic_arn(topic_arn)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| {
                format!(
                    "ListSubscriptionsByTopic on `{topic_arn}`: {}",
                    e.message().unwrap_or("no message")
                )
            })?;
        pending.extend(
            out.subscriptions()
                .iter()
                .filter(|s| s.subscription_arn() == Some("PendingConfirmation"))
                .map(|s| s.endpoint().unwrap_or("an endpoint").to_string()),
        );
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(pending);
        }
    }
}

/// The warning for `pending`, if any.
pub fn warning(pending: &[String]) -> Option<String> {
    if pending.is_empty() {
        return None;
    }
    let who = pending
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "alarms: the e-mail subscription of {who} is not confirmed, so no alarm reaches it: follow the link in the message from AWS Notifications (sent when the subscription was made; it expires after 3 days, after which a deploy with the address changed and back sends a new one)"
    ))
}
