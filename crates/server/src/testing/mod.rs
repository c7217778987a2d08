//! Test support, compiled only for tests (the `testing` feature): layers
//! that inject faults into any store, and the conformance suites every
//! store implementation must pass.

pub mod conformance;
pub mod faults;
pub mod store_conformance;
