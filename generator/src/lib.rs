//! The Microprocesses kit's generator: validates per-environment TOML, renders the
//! CloudFormation stacks of the pattern (core, service, one per microprocess) with a
//! manifest a pipeline can deploy from, deploys them and tears them down.
//!
//! The `microprocess` binary is a thin shell over [`commands`].

pub mod alarm_subscriptions;
pub mod aws;
pub mod commands;
pub mod config;
pub mod deploy;
pub mod estimate;
pub mod local;
pub mod manifest;
pub mod names;
pub mod package;
pub mod plan;
pub mod render;
pub mod runs;

/// The kit's version, stamped on every resource as the `microprocess:kit-version` tag.
pub const KIT_VERSION: &str = env!("CARGO_PKG_VERSION");
