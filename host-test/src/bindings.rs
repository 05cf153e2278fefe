//! Host bindings of the `plugin` world: the one place `bindgen!` runs.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
});

pub use exports::teams_sentinel::callrecords::{expand, graph, schema, sentinel, types, webhook};
