//! Envoy `envoy.filters.http.wasm` adapter (proxy-wasm ABI 0.2.1): the Graph change-notification
//! webhook, answered by the core's pipeline ([`callrecords::pipeline`]).
//!
//! The filter buffers the request (headers, then the body until `end_of_stream`), starts a
//! [`callrecords::pipeline::Run`] with it and steps the run: each `Send` becomes a
//! `dispatch_http_call` to the Envoy cluster configured for the URL's origin (several stay
//! outstanding at once), each answer goes back by its request id with `Run::respond` (an answer
//! without `:status`, Envoy's sign of a failed call, with `Run::transport_error`) and steps the
//! run again, each `Wait` also parks the stream until the root context's tick says it is due, and
//! `Done` becomes `send_http_response`. No Graph or Azure rule lives here.
//!
//! The plugin configuration (`configuration` of the filter, a `google.protobuf.StringValue`) is
//! JSON: `{"settings": {"CALLRECORDS_…": "…"}, "clusters": {"https://login.microsoftonline.com":
//! "login", …}}`; see [`settings`]. A bad configuration is not fatal to Envoy: every request is
//! answered `500` with the reason.

#![deny(missing_docs)]

pub mod settings;

#[cfg(target_arch = "wasm32")]
mod filter;
