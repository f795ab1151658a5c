//! Black-box API tests: one binary, one module per area.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod bad_input;
mod batch_search;
mod cli;
mod concurrency;
mod conditional;
mod conformance;
mod crud;
mod door;
mod empty_arrays;
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
mod patch;
mod patch_bundle;
mod postcodes;
mod present;
mod routing;
mod routing_cli;
mod search;
mod search_results;
mod task_create;
mod task_states;
mod transaction;
mod validate_op;
mod validation;
mod workflow;
