//! Shared library of the microprocess kit.
//!
//! The Lambdas (`splitter`, `forwarder`) and the `microprocess` CLI share one definition of
//! each rule. Everything is pure and synchronous except the two modules that talk to AWS:
//!
//! - [`ledger`]: the run and child records in DynamoDB, exactly-once accounting
//!   (async, over `aws-sdk-dynamodb`);
//! - [`aws`]: the SDK configuration from the standard chain;
//!
//! - [`contract`]: the HTTP contract v1 with a service (page, request and reduce bodies,
//!   header names, item limits, idempotency keys, how a response is classified);
//! - [`signing`]: the `X-Microprocess-Signature` header (HMAC-SHA256, key rotation);
//! - [`run_id`]: run ids, derived from the schedule time or given by hand;
//! - [`queue_message`]: the kit's own message on a microprocess queue;
//! - [`ledger_keys`]: the DynamoDB key layout of runs and children, and their states;
//! - [`service_client`]: signed HTTP calls to the queue host, classified per the contract;
//! - [`settings`]: a function's settings from its environment variables;
//! - [`logging`]: JSON logs for Lambda.

pub mod aws;
pub mod contract;
pub mod errors;
pub mod ledger;
pub mod ledger_keys;
pub mod logging;
pub mod printable;
pub mod queue_host;
pub mod queue_message;
pub mod run_deadline;
pub mod run_id;
pub mod service_client;
pub mod settings;
pub mod signing;
pub mod signing_secret;
