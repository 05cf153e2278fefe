//! The subscription jobs (subscribe, renew, list, unsubscribe, keep) and the webhook job's
//! lifecycle actions (reauthorize and renew, recreate a removed subscription): their Graph
//! requests, with an expiry [`EXPIRATION_MINUTES`] ahead, and what their answers go into.
//!
//! The keep job is what a long-running service runs every few minutes: it lists the app's
//! subscriptions, renews this webhook's callRecords subscription when it expires within the
//! margin, and creates one when there is none. It is idempotent: its create is never repeated
//! within a run (a create whose answer was lost may have succeeded; the next run's list finds it),
//! so it never leaves two subscriptions behind.

use super::step::{Pending, Step};
use super::{Run, instant};
use crate::config::Config;
use crate::entra::Scope;
use crate::error::Error;
use crate::graph;
use crate::graph::subscriptions::{self, EXPIRATION_MINUTES, NewSubscription};
use crate::http::OutgoingRequest;
use crate::values::{Instant, format_timestamp, parse_timestamp};

/// A subscription request.
#[derive(Debug, Clone)]
pub(super) enum SubscriptionStep {
    /// Reauthorize one subscription (after `reauthorizationRequired`).
    Reauthorize { id: String, tenant: String },
    /// Extend one subscription's expiry.
    Renew { id: String, tenant: String },
    /// Create the callRecords subscription.
    Create { tenant: String },
    /// A page of the app's subscriptions: the first (no link) or a further one.
    List { link: Option<String> },
    /// Delete one subscription.
    Delete { id: String },
}

impl SubscriptionStep {
    /// The tenant whose Graph token the request carries; `None` for the app's own.
    pub(super) fn tenant(&self) -> Option<&str> {
        match self {
            SubscriptionStep::Reauthorize { tenant, .. }
            | SubscriptionStep::Renew { tenant, .. }
            | SubscriptionStep::Create { tenant } => Some(tenant),
            SubscriptionStep::List { .. } | SubscriptionStep::Delete { .. } => None,
        }
    }
}

impl Run {
    pub(super) fn subscription_request(&self, step: &SubscriptionStep, now: u64) -> crate::Result<OutgoingRequest> {
        let c = &self.config;
        let g = c.graph_url.as_str();
        let token = self.cached_token(Scope::Graph, step.tenant().unwrap_or(&c.credentials.tenant_id));
        match step {
            SubscriptionStep::Reauthorize { id, .. } => subscriptions::reauthorize_request(g, id, token),
            SubscriptionStep::Renew { id, .. } => subscriptions::renew_request(g, id, &expiration(now), token),
            SubscriptionStep::Create { .. } => {
                let (notification_url, lifecycle_url) = subscription_urls(c)?;
                let new = NewSubscription {
                    notification_url,
                    lifecycle_url: Some(lifecycle_url),
                    client_state: c.webhook.client_states.first().map(String::as_str).unwrap_or_default(),
                    change_types: &c.change_types,
                    expiration: &expiration(now),
                };
                subscriptions::create_request(g, &new, token)
            }
            SubscriptionStep::List { link } => match link {
                Some(l) => graph::next_page_request(g, l, token),
                None => subscriptions::list_request(g, token),
            },
            SubscriptionStep::Delete { id } => subscriptions::delete_request(g, id, token),
        }
    }

    pub(super) fn on_subscription(&mut self, step: SubscriptionStep, body: &[u8], now: u64) {
        let text = || String::from_utf8_lossy(body).into_owned();
        match step {
            SubscriptionStep::Reauthorize { id, .. } => {
                self.report.lifecycle.push(format!("reauthorized subscription {id}"))
            }
            SubscriptionStep::Renew { id, .. } => {
                let renewed = subscriptions::parse_subscription(&text());
                let expires = renewed.as_ref().map(|s| s.expiration.clone()).unwrap_or_default();
                self.report.lifecycle.push(format!("renewed subscription {id} until {expires}"));
                // The report shows it with its new expiry.
                if let Ok(mut s) = renewed
                    && let Some(old) = self.report.subscriptions.iter_mut().find(|o| o.id == id)
                {
                    if s.notification_url.is_empty() {
                        s.notification_url = old.notification_url.clone();
                        s.resource = old.resource.clone();
                    }
                    *old = s;
                }
            }
            SubscriptionStep::Create { .. } => match subscriptions::parse_subscription(&text()) {
                Ok(s) => {
                    self.report.lifecycle.push(format!("created subscription {} until {}", s.id, s.expiration));
                    self.report.subscriptions.push(s);
                }
                Err(e) => self.fatal(format!("create subscription: {e}")),
            },
            SubscriptionStep::List { .. } => match subscriptions::parse_subscription_page(&text()) {
                Ok((subs, next)) => {
                    let last_page = next.is_none();
                    if let Some(link) = next {
                        let page = SubscriptionStep::List { link: Some(link) };
                        self.queue.push_front(Pending::new(Step::Subscription(page)));
                    }
                    for s in &subs {
                        let ours = self.config.notification_url.as_deref().is_some_and(|u| u == s.notification_url);
                        self.keep_found |= s.is_call_records() && ours;
                    }
                    if self.keep && last_page && !self.keep_found {
                        // Never retried here: a lost answer may hide a create that worked.
                        let tenant = self.config.credentials.tenant_id.clone();
                        let mut create = Pending::new(Step::Subscription(SubscriptionStep::Create { tenant }));
                        create.attempt = u32::MAX / 2;
                        self.queue.push_back(create);
                    }
                    for s in subs {
                        // A renew job renews this webhook's callRecords subscriptions that are due.
                        if self.renew_margin_ms > 0 {
                            let due = parse_timestamp(&s.expiration)
                                .is_none_or(|e| e.secs * 1000 < (now + self.renew_margin_ms) as i64);
                            let ours = self.config.notification_url.as_deref().is_none_or(|u| u == s.notification_url);
                            if s.is_call_records() && ours && due {
                                let tenant = self.config.credentials.tenant_id.clone();
                                let renew = SubscriptionStep::Renew { id: s.id.clone(), tenant };
                                self.queue.push_back(Pending::new(Step::Subscription(renew)));
                            } else if !(self.keep && s.is_call_records() && ours) {
                                // A keep job reports this webhook's subscription, due or not.
                                continue;
                            }
                        }
                        self.report.subscriptions.push(s);
                    }
                }
                Err(e) => self.fatal(format!("subscriptions: {e}")),
            },
            SubscriptionStep::Delete { id } => self.report.lifecycle.push(format!("deleted subscription {id}")),
        }
    }

    pub(super) fn subscription_failed(&mut self, step: SubscriptionStep, reason: String) {
        match step {
            SubscriptionStep::Reauthorize { id, .. } => self.fatal(format!("reauthorize subscription {id}: {reason}")),
            SubscriptionStep::Renew { id, .. } => self.fatal(format!("renew subscription {id}: {reason}")),
            SubscriptionStep::Create { .. } => self.fatal(format!("create subscription: {reason}")),
            SubscriptionStep::List { .. } => self.fatal(format!("list subscriptions: {reason}")),
            SubscriptionStep::Delete { id } => self.fatal(format!("delete subscription {id}: {reason}")),
        }
    }
}

/// A new expiry for a subscription made or renewed at `now`.
fn expiration(now: u64) -> String {
    let t = instant(now);
    format_timestamp(Instant { secs: t.secs + i64::from(EXPIRATION_MINUTES) * 60, ticks: 0 })
}

/// The webhook's notification and lifecycle URLs, which a new subscription needs.
pub(super) fn subscription_urls(c: &Config) -> crate::Result<(&str, &str)> {
    let n = c
        .notification_url
        .as_deref()
        .ok_or_else(|| Error::arg("CALLRECORDS_NOTIFICATION_URL is not set: the public https URL Graph should call"))?;
    Ok((n, c.lifecycle_url.as_deref().unwrap_or(n)))
}
