//! The test kit of the Teams callRecords artifacts: what tests (and the CLI's embedded default)
//! put in front of the product instead of Azure.
//!
//! | module | what |
//! |---|---|
//! | [`standin`] | local Entra ID, Graph and Azure Monitor that check requests the way Azure does, with a seeded fault plan |
//! | [`azurite`] | Azurite, the Azure Storage emulator, as the queue-mode scale-out tests' Storage queue |
//! | [`demo`] | the made-up tenant, app, DCR, workspace and clientState the stand-ins accept |
//! | [`fixtures`] | the sample payloads of `examples/graph/`, compiled in |
//! | [`synth`] | synthetic callRecords (large meetings, hostile shapes) |
//! | [`sample_data`] | the Sentinel sample data: synthetic calls with planted attacks |

#![deny(missing_docs)]

pub mod azurite;
pub mod demo;
pub mod fixtures;
pub mod sample_data;
pub mod standin;
pub mod synth;

/// A deliberately broken build of the plugin component (its SharedKey signature is wrong), for
/// proving that `check` fails. Only with the `misbehaving-twin` feature (the tests turn it on).
#[cfg(feature = "misbehaving-twin")]
pub const MISBEHAVING_PLUGIN: &[u8] = include_bytes!(env!("CALLRECORDS_MISBEHAVING_WASM"));

/// The service component with the same flaw, which also never returns from a request for
/// `/__spin` (a guest stuck in a loop), for the sandbox tests.
#[cfg(feature = "misbehaving-twin")]
pub const MISBEHAVING_SERVICE: &[u8] = include_bytes!(env!("CALLRECORDS_MISBEHAVING_SERVICE_WASM"));
