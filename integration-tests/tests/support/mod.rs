//! Support shared by this crate's test files.
#![allow(dead_code)]

pub mod fidelity;
