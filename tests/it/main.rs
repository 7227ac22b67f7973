//! verigate's integration tests: one test binary, so the harness (`common`) and verigate are
//! compiled and linked once instead of once per test file. One module per area, each the test
//! file it was; `common` spawns the proxy, the sandbox and the apps on 127.0.0.1:0.
//!
//! To add tests: write `tests/it/<area>.rs` using `crate::common::*` (no `mod common;` of its
//! own) and add `mod <area>;` below; run them alone with `cargo test --test it <area>::`.
//! All modules share one process: a test that asserts exact values of the process-wide metrics
//! registry runs itself alone with `common::skip::alone("<area>::<test>")`; other metric
//! checks compare before and after, on labels (routes, upstreams) of their own.

mod common;

mod admin;
mod age_status;
mod alerts;
mod apps_smoke;
mod assertion_claims;
mod browser;
mod browser_guardian;
mod browser_pages;
mod config;
mod consents;
mod credentials;
mod deploy;
mod differential;
mod docs;
mod faults;
mod guardian;
mod hosts;
mod iamport_flow;
mod identity_rules;
mod ifree_flow;
mod kept;
mod logout;
mod ops;
mod packaging;
mod pages;
mod portone_flow;
mod privacy;
mod provider_faults;
mod provider_outage;
mod ratelimit;
mod readiness;
mod records;
mod refusal_pages;
mod reload_truth;
mod request_reading;
mod rules;
mod security;
mod sentinel;
mod slow_readers;
mod store;
mod tls;
mod tomo_flow;
mod upstream;
mod upstream_names;
mod websocket;
mod write_patterns;
