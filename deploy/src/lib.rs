//! # dialtone-lab: a Dialtone lab on one machine
//!
//! [`cli`] is the program (`cargo run --release -p dialtone-lab`); [`lab`] reads the lab file
//! (`deploy/lab.toml`). The program lives in the library so that the end-to-end tests can build
//! it under their own name.

pub mod cli;
pub mod lab;
