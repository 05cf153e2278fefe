//! Who an identity set or an endpoint is: `associatedIdentity` and the `_v2` identities first, the
//! deprecated ones as the fallback, the primary identity of a set by kind.

use std::borrow::Cow;

use super::record::{Endpoint, Identity, IdentitySet};
use crate::values::Obj;

/// Identity-set keys in the order a primary identity is chosen.
const IDENTITY_PRIORITY: &[&str] = &[
    "user",
    "guest",
    "acsUser",
    "azureCommunicationServicesUser",
    "spoolUser",
    "phone",
    "applicationInstance",
    "application",
    "onPremises",
    "encrypted",
    "device",
];

/// An identity resolved for a row.
#[derive(Default, Clone)]
pub(super) struct Who<'a> {
    pub(super) kind: Option<Cow<'a, str>>,
    pub(super) id: Option<Cow<'a, str>>,
    pub(super) display_name: Option<Cow<'a, str>>,
    pub(super) upn: Option<Cow<'a, str>>,
    pub(super) tenant_id: Option<Cow<'a, str>>,
}

impl<'a> Who<'a> {
    fn from_identity(kind: Option<Cow<'a, str>>, i: &Identity<'a>) -> Self {
        Who {
            kind,
            id: i.id.get().cloned(),
            display_name: i.display_name.get().cloned(),
            upn: i.user_principal_name.get().cloned(),
            tenant_id: i.tenant_id.get().cloned(),
        }
    }

    /// `associatedIdentity` (v2): the kind comes from `@odata.type`.
    fn from_typed(i: &Identity<'a>) -> Self {
        Self::from_identity(i.odata_type.get().and_then(|t| identity_kind(t)).map(Cow::Owned), i)
    }

    /// The primary identity of an identitySet.
    pub(super) fn from_set(set: &IdentitySet<'a>) -> Option<Self> {
        let usable = |i: &Identity| i.id.get().is_some() || i.display_name.get().is_some();
        IDENTITY_PRIORITY
            .iter()
            .find_map(|k| set.entries.iter().find(|(key, i)| key == k && usable(i)))
            .or_else(|| set.entries.iter().find(|(_, i)| usable(i)))
            .map(|(k, i)| Self::from_identity(Some(k.clone()), i))
    }

    fn is_empty(&self) -> bool {
        self.id.is_none() && self.display_name.is_none()
    }
}

/// `#microsoft.graph.communicationsUserIdentity` -> `user`; `...azureCommunicationServicesUserIdentity`
/// -> `azureCommunicationServicesUser`; a plain `identity` says nothing.
fn identity_kind(odata_type: &str) -> Option<String> {
    let t = odata_type.trim_start_matches('#');
    let t = match t.get(..16) {
        Some(p) if p.eq_ignore_ascii_case("microsoft.graph.") => &t[16..],
        _ => t,
    };
    let t = t.strip_prefix("communications").unwrap_or(t);
    let t = t.strip_suffix("Identity").unwrap_or(t);
    let mut chars = t.chars();
    let first = chars.next()?;
    let kind: String = std::iter::once(first.to_ascii_lowercase()).chain(chars).collect();
    (kind != "identity" && !kind.is_empty()).then_some(kind)
}

/// The identity of an endpoint: `associatedIdentity` first, the deprecated `identity` after.
pub(super) fn endpoint_who<'a>(e: &Endpoint<'a>) -> Who<'a> {
    if let Obj(Some(i)) = &e.associated_identity {
        let who = Who::from_typed(i);
        if !who.is_empty() {
            return who;
        }
    }
    e.identity.0.as_ref().and_then(Who::from_set).unwrap_or_default()
}

pub(super) fn endpoint_type<'a>(e: &Endpoint<'a>) -> Option<Cow<'a, str>> {
    match e.odata_type.get() {
        Some(t) if ends_with_ci(t, "participantEndpoint") => Some(Cow::Borrowed("participant")),
        Some(t) if ends_with_ci(t, "serviceEndpoint") => Some(Cow::Borrowed("service")),
        Some(t) => Some(t.clone()),
        None if e.associated_identity.0.is_some() || e.identity.0.is_some() => Some(Cow::Borrowed("participant")),
        None => None,
    }
}

fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.is_char_boundary(s.len() - suffix.len())
        && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}
