//! The referral domain: the welfare directory, routing a referral to the welfare
//! organisation that serves the patient, and the Task it creates. No actix, no diesel:
//! the api layer fetches what the domain needs and stores what it decides.

pub mod access;
pub mod age;
pub mod business_status;
pub mod codes;
pub mod directory;
pub mod message;
pub mod municipality;
pub mod positive_health;
pub mod postcode;
pub mod postcode_table;
pub mod report;
pub mod route;
pub mod stats;
pub mod suppression;
pub mod task;
pub mod task_create;
pub mod workflow;
