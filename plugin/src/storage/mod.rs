//! Azure Storage: the Queue service's REST API, which queue mode's scale-out shares among any
//! number of `callrecords serve` / `work` processes and the service component.
//!
//! | file | rules |
//! |---|---|
//! | `storage/queue.rs` | Put, Get (with a visibility timeout), Update and Delete Message, Create Queue; their XML; the message text; SharedKey (the emulator, account keys) or an Entra token for `https://storage.azure.com/.default`; the service's XML errors |

pub mod queue;
