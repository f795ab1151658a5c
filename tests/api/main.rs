//! Black-box API tests: one binary, one module per area.

mod bad_input;
mod cli;
mod crud;
mod helpers;
mod history;
mod metadata;
mod validation;
