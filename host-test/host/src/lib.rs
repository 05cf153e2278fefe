//! The product host of the Teams callRecords artifacts: wasmtime (=48.0.8) embeddings of the
//! `plugin` component ([`runtime`]: one `InstancePre`, a fresh sandboxed store per call, a memory
//! cap and an epoch deadline, traps as errors) and of the `service` component ([`service`]: the
//! wasi:http webhook, a fresh instance per request, its outgoing requests sent to the network or
//! to an in-process [`transport::Responder`]), plus the driver jobs the CLI runs ([`jobs`]).
//!
//! What only tests need lives elsewhere: the stand-ins in `callrecords-test-kit`, the conformance
//! suite and the Fluent Bit / proxy-wasm ABI emulators in `callrecords-conformance`.

#![deny(missing_docs)]

pub mod artifacts;
#[allow(missing_docs)]
pub mod bindings;
pub mod cache;
pub mod calls;
pub mod edge;
pub mod jobs;
pub mod keyvalue;
pub mod queue;
pub mod rawhttp;
pub mod record;
pub mod runtime;
pub mod service;
pub mod transport;
pub mod worker;

pub use calls::Error;
pub use runtime::{CallError, Limits, Runtime};
