//! wor-hub: a headless FHIR R4 hub carrying Welzijn op Recept referrals from GP
//! systems to local welfare organisations.

pub mod api;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod error;
pub mod fhir;
pub mod metrics;
pub mod notify;
pub mod referral;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod tools;
