//! The conformance suite of the Teams callRecords artifacts: what any build of them must do,
//! with expectations derived here (HMACs computed by this crate, values read off the public docs
//! and the sample data), never by asking the artifact under test.
//!
//! | module | checks |
//! |---|---|
//! | [`scenarios`] | a `plugin` world component, export by export (`callrecords check COMPONENT.wasm`) |
//! | [`jco`] | the same scenarios recorded for replay on jco, a second component host |
//! | [`fluentbit`] | a Fluent Bit `filter_wasm` module, under an emulation of Fluent Bit's calling convention (`callrecords check MODULE.wasm`) |
//! | [`proxywasm`] | the Envoy filter, under a proxy-wasm host that calls it in Envoy's order |
//! | [`real_fluent_bit`] | a Fluent Bit module in a real Fluent Bit (`FLUENT_BIT`): the `wasm_stack_size` it needs |

#![deny(missing_docs)]

pub mod fluentbit;
pub mod jco;
pub mod proxywasm;
pub mod real_fluent_bit;
pub mod scenarios;

pub use scenarios::{Outcome, SCENARIOS, Scenario, run_all};
