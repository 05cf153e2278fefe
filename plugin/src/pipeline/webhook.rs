//! The webhook job: Graph's request judged by [`crate::graph::webhook`]; each notified call to
//! fetch (once per call and tenant, as the judge folds duplicates: the same id may name a record
//! in each of two tenants), each lifecycle event acted on (reauthorize and renew, recreate a
//! removed subscription) or turned into a resync for the operator.

use super::queue::Accepted;
use super::step::{Pending, Step};
use super::subscriptions::SubscriptionStep;
use super::{Resync, Run, instant};
use crate::graph::webhook::{self, LifecycleKind, RequestKind};
use crate::http::IncomingRequest;
use crate::values::{Instant, format_timestamp, parse_timestamp};

impl Run {
    pub(super) fn start_webhook(&mut self, request: &IncomingRequest, now: u64) {
        let outcome = webhook::handle(&self.config.webhook, request);
        self.report.rejected = outcome.rejected.len() as u32;
        self.report.duplicates = outcome.duplicates;
        if outcome.kind != RequestKind::Delivery {
            self.report.ok = outcome.response.status < 400;
            if !self.report.ok {
                self.report.error = Some(String::from_utf8_lossy(&outcome.response.body).into_owned());
            }
            self.report.response = outcome.response;
            self.finished = true;
            return;
        }
        // Already one per (call, tenant): each tenant's record of a call is fetched, or queued.
        for n in outcome.notifications {
            if self.accept_only {
                let change_type = n.change_type;
                self.report.accepted.push(Accepted { call_id: n.call_id, tenant_id: n.tenant_id, change_type });
            } else {
                self.queue_call(n.call_id, n.tenant_id);
            }
        }
        let subscription = |s| Pending::new(Step::Subscription(s));
        for l in outcome.lifecycle {
            let (id, tenant) = (l.subscription_id, l.tenant_id);
            match l.kind {
                LifecycleKind::ReauthorizationRequired => {
                    let reauthorize = SubscriptionStep::Reauthorize { id: id.clone(), tenant: tenant.clone() };
                    self.queue.push_back(subscription(reauthorize));
                    self.queue.push_back(subscription(SubscriptionStep::Renew { id, tenant }));
                }
                LifecycleKind::SubscriptionRemoved => {
                    self.set_resync("subscriptionRemoved", &id, now);
                    self.queue.push_back(subscription(SubscriptionStep::Create { tenant }));
                }
                LifecycleKind::Missed => {
                    self.set_resync("missed", &id, now);
                    self.report.lifecycle.push(format!("missed notifications on subscription {id}: resync needed"));
                }
                LifecycleKind::Unknown => {
                    self.report.lifecycle.push(format!("ignored unknown lifecycle event {:?} on {id}", l.event));
                }
            }
        }
    }

    /// A resync of the last `CALLRECORDS_RESYNC_HOURS` up to `now`, widened to cover an earlier one.
    fn set_resync(&mut self, reason: &str, subscription_id: &str, now: u64) {
        let until = instant(now);
        let since = Instant { secs: until.secs - i64::from(self.config.resync_hours) * 3600, ticks: 0 };
        let since = match &self.report.resync {
            Some(r) => parse_timestamp(&r.since).map_or(since, |s| s.min(since)),
            None => since,
        };
        self.report.resync = Some(Resync {
            reason: reason.into(),
            subscription_id: subscription_id.into(),
            since: format_timestamp(since),
            until: format_timestamp(until),
        });
    }
}
