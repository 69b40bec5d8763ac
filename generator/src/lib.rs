//! The Microprocesses kit's generator: validates per-environment TOML and renders the
//! CloudFormation stacks of the pattern (core, service, one per microprocess), with a
//! manifest a pipeline can deploy from.
//!
//! The `microprocess` binary is a thin shell over [`commands`].

pub mod commands;
pub mod config;
pub mod manifest;
pub mod package;
pub mod plan;
pub mod render;

/// The kit's version, stamped on every resource as the `microprocess:kit-version` tag.
pub const KIT_VERSION: &str = env!("CARGO_PKG_VERSION");
