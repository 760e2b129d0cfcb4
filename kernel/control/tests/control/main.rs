//! The control plane's public API, tested from outside through `handle`, `poll`,
//! `take_response` and `cancel` with a fake engine runtime: every route, status and body.

mod auth;
mod common;
mod compositions;
mod deferred;
mod fanout;
mod fleet;
mod functions;
mod invoke;
mod limits;
mod memory;
mod props;
mod tenants;

/// Cases per property: enough to find shallow bugs, few enough to keep `cargo test` quick.
pub const CASES: u32 = 256;
