//! The shipped artifacts this crate was built with (its build script builds them from `plugin/`
//! with `--profile wasm-release`; copies are left under `target/wasm/`).

/// The `plugin` world component (`wasm32-wasip2`).
pub const PLUGIN: &[u8] = include_bytes!(env!("CALLRECORDS_PLUGIN_WASM"));
/// The `service` world component: the plugin exports plus `wasi:http/incoming-handler`.
pub const SERVICE: &[u8] = include_bytes!(env!("CALLRECORDS_SERVICE_WASM"));
/// The Fluent Bit `filter_wasm` core module (`plugin/fluent-bit`, `wasm32-unknown-unknown`).
pub const FLUENT_BIT_FILTER: &[u8] = include_bytes!(env!("CALLRECORDS_FLUENT_BIT_WASM"));
/// The Envoy proxy-wasm filter (`plugin/envoy`, `wasm32-wasip1`).
pub const ENVOY_FILTER: &[u8] = include_bytes!(env!("CALLRECORDS_ENVOY_WASM"));
