//! Microsoft Teams callRecords -> Microsoft Sentinel: the sans-IO core.
//!
//! Every Graph and Azure Monitor rule of the project lives here, once, as plain functions from
//! bytes and values to values and requests. Nothing here performs IO or reads a clock (the
//! current time is an argument), so the same code runs natively, in the WASI component, and in
//! every host adapter.
//!
//! | module | job |
//! |---|---|
//! | [`pipeline`] | the pipeline as a state machine: webhook → Graph → rows → ingestion → answer; backfill; subscriptions |
//! | [`config`] | the `CALLRECORDS_*` settings |
//! | [`entra`] | Entra ID token requests and answers |
//! | [`graph`] | callRecord, page and List requests; merging pages; [`graph::subscriptions`]; the change-notification endpoint ([`graph::webhook`]) |
//! | [`expand`] | callRecord -> typed rows |
//! | [`schema`] | the tables those rows fill |
//! | [`monitor`] | batching and Logs Ingestion / Data Collector (SharedKey) / forward requests |
//! | [`http`] | request/response shapes, base URLs and the bearer header, and the judge of every service answer |

#![deny(missing_docs)]

pub mod config;
pub mod entra;
pub mod error;
pub mod expand;
pub mod graph;
pub mod http;
pub mod monitor;
pub mod pipeline;
pub mod schema;
pub mod values;

// The component exports exist only in the wasm32-wasip2 build; the same crate is an rlib for
// native use and for the core-module adapters on other wasm targets.
#[cfg(all(target_os = "wasi", target_env = "p2"))]
mod component;

pub use error::{Error, Result, ServiceError};
