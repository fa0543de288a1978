//! `dialtone-ata`: a software Cisco ATA 186.
pub mod auth;
pub mod call;
pub mod config;
pub mod dial_plan;
pub mod error;
pub mod identity;
pub mod registration;
