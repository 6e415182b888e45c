//! The integration tests' shared helpers, one file per job. Every test binary says
//! `mod support;` and `use support::*;`, and compiles the whole tree: a helper that one
//! binary does not use is dead code there, hence the allowances below.

#![allow(dead_code)]

mod binary;
mod clients;
mod curl;
mod dashboard;
mod gateway;
mod ids;
mod jwt;
mod metrics;
mod net;
mod prometheus;
mod promql;
mod raw_http;
mod raw_sse;
mod sse;
mod wait;

// Each test binary uses only part of the tree.
#[allow(unused_imports)]
pub use self::{
    binary::*, clients::*, curl::*, dashboard::*, gateway::*, ids::*, jwt::*, metrics::*, net::*,
    prometheus::*, promql::*, raw_http::*, raw_sse::*, sse::*, wait::*,
};
