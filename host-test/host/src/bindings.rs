//! Host bindings of the `plugin` world: the one place `bindgen!` runs.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "plugin",
});

pub use exports::teams_sentinel::callrecords::{driver, expand, graph, schema, sentinel, types, webhook};

impl webhook::RejectReason {
    /// The WIT name of the reason (`client-state-mismatch`, ...).
    pub fn wit_name(self) -> &'static str {
        match self {
            Self::ClientStateMismatch => "client-state-mismatch",
            Self::TenantNotAllowed => "tenant-not-allowed",
            Self::NotACallRecord => "not-a-call-record",
            Self::Malformed => "malformed",
        }
    }
}

impl webhook::LifecycleKind {
    /// The WIT name of the kind.
    pub fn wit_name(self) -> &'static str {
        match self {
            Self::ReauthorizationRequired => "reauthorization-required",
            Self::SubscriptionRemoved => "subscription-removed",
            Self::Missed => "missed",
            Self::Unknown => "unknown",
        }
    }
}

impl webhook::RequestKind {
    /// The WIT name of the kind.
    pub fn wit_name(self) -> &'static str {
        match self {
            Self::Validation => "validation",
            Self::Delivery => "delivery",
            Self::Refused => "refused",
        }
    }
}
