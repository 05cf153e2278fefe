//! Microsoft Teams callRecords -> Microsoft Sentinel: the sans-IO core.
//!
//! Every Graph and Azure Monitor rule of the project lives here, once, as plain functions from
//! bytes and values to values and requests. Nothing here performs IO or reads a clock (the
//! current time is an argument), so the same code runs natively, in the WASI component, and in
//! every host adapter.
//!
//! Modules are grouped by the service whose rules they hold; a folder's `mod.rs` starts with a
//! table of its files.
//!
//! | module | role |
//! |---|---|
//! | [`graph`] | Microsoft Graph: callRecord, participants_v2, page and List requests, merging pages; [`graph::subscriptions`]; the change-notification endpoint, [`graph::webhook`] |
//! | [`entra`] | Microsoft Entra ID: the token request and its answer |
//! | [`expand`] | a callRecord into typed rows (and the 2020 seed row) |
//! | [`schema`] | the tables those rows fill, declared once |
//! | [`monitor`] | Azure Monitor: batching, Logs Ingestion, Data Collector (SharedKey), forward; [`monitor::templates`], the ARM / DCR / Kusto content |
//! | [`pipeline`] | the state machine every host drives: webhook → Graph → rows → ingestion → answer; backfill; subscription jobs; retries, tokens, rate limits |
//! | [`storage`] | Azure Storage: the Queue service requests (SharedKey or an Entra token) queue mode scales out on |
//! | [`config`] | the `CALLRECORDS_*` settings |
//! | [`http`] | request and response shapes, base URLs and the bearer header, the judge of every service answer |
//! | [`values`] | Graph's values: timestamps, durations, lenient scalars |
//! | [`error`] | the error type |
//!
//! The WASI component's glue (`component.rs`, `component/service.rs`) only translates between the
//! WIT bindings and these modules.

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
pub mod storage;
pub mod values;

// The component exports exist only in the wasm32-wasip2 build; the same crate is an rlib for
// native use and for the core-module adapters on other wasm targets.
#[cfg(all(target_os = "wasi", target_env = "p2"))]
mod component;

pub use error::{Error, Result, ServiceError};
