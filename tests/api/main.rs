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
mod helpers;
mod history;
mod idempotency;
mod identifiers;
mod limits;
mod metadata;
mod outcome;
mod patch;
mod patch_bundle;
mod patch_refusals;
mod postcodes;
mod present;
mod routing;
mod routing_cli;
mod routing_directory;
mod search;
mod search_results;
mod task_create;
mod task_lifecycle;
mod task_states;
mod transaction;
mod validate_op;
mod validation;
mod workflow;
