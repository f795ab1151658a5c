//! Black-box API tests: one binary, one module per area.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod bad_input;
mod cli;
mod concurrency;
mod crud;
mod door;
mod feed;
mod hardening;
mod hardening_edge;
mod helpers;
mod history;
mod hostile;
mod hostile_gen;
mod idempotency;
mod identifiers;
mod limits;
mod metadata;
mod outcome;
mod postcodes;
mod routing;
mod routing_cli;
mod search;
mod search_results;
mod transaction;
mod validation;
mod workflow;
