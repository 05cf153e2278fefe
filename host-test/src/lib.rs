//! The wasmtime harness of the Teams callRecords plugin: loads the `plugin` component once per
//! process, calls every export in a sandboxed instance (memory cap, deadline, traps as errors),
//! and carries the conformance suite, the offline replay pipeline and the CLI's building blocks;
//! [`fluentbit`] drives the Fluent Bit `filter_wasm` module the way Fluent Bit does, [`proxywasm`]
//! the Envoy filter the way Envoy's `envoy.filters.http.wasm` does.

#![deny(missing_docs)]

#[allow(missing_docs)]
pub mod bindings;
pub mod calls;
pub mod conformance;
pub mod fluentbit;
pub mod jco;
pub mod jobs;
pub mod proxywasm;
pub mod rawhttp;
pub mod replay;
pub mod runtime;
pub mod sentinel_content;
pub mod serve;
pub mod servehost;
pub mod standin;
pub mod synth;

pub use calls::Error;
pub use runtime::{CallError, Limits, Runtime};
