//! Black-box API tests: one binary, one module per area.

mod bad_input;
mod cli;
mod concurrency;
mod crud;
mod helpers;
mod history;
mod metadata;
mod validation;
