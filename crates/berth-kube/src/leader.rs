//! Leader election on a coordination.k8s.io/v1 Lease, with client-go's
//! rules: a lease held by someone else is free once its record has not
//! changed for `leaseDuration` (measured on our own clock, from when we saw
//! it change); the leader renews every `retryPeriod` and gives up when it
//! could not renew for `renewDeadline`, however the API server answers: a
//! renewal that gets no answer is abandoned at the deadline (client-go bounds
//! its renewal by the same context).

use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tracing::{debug, info, warn};

pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    pub identity: String,
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
    /// The last record we saw (holder, renew time) and when we saw it change.
    observed: Option<(Option<String>, Option<MicroTime>)>,
    observed_at: Instant,
}

impl LeaderElector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: String,
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> LeaderElector {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity,
            lease_duration,
            renew_deadline,
            retry_period,
            observed: None,
            observed_at: Instant::now(),
        }
    }

    /// Blocks until we hold the lease.
    pub async fn acquire(&mut self) {
        info!(lease = %self.name, identity = %self.identity, "attempting to acquire leader lease");
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    info!(lease = %self.name, identity = %self.identity, "acquired leader lease");
                    return;
                }
                Ok(false) => debug!("lease held by another scheduler"),
                Err(e) => warn!(error = %e, "leader election: could not read or write the lease"),
            }
            tokio::time::sleep(self.retry_period).await;
        }
    }

    /// Renews until renewal fails for `renewDeadline`; then returns (the
    /// caller must stop scheduling at once). A renewal still unanswered at
    /// the deadline (a connection that went silent) counts as failed.
    pub async fn keep(&mut self) {
        let mut last_renew = Instant::now();
        loop {
            tokio::time::sleep(self.retry_period).await;
            let deadline = last_renew + self.renew_deadline;
            match tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_renew = Instant::now(),
                Ok(Ok(false)) => {
                    warn!(lease = %self.name, "lease taken by another scheduler");
                    return;
                }
                Ok(Err(e)) => warn!(error = %e, "failed to renew the leader lease"),
                Err(_) => {
                    warn!(lease = %self.name, "the lease renewal got no answer within renewDeadline");
                    return;
                }
            }
            if last_renew.elapsed() >= self.renew_deadline {
                warn!(lease = %self.name, "could not renew the leader lease within renewDeadline");
                return;
            }
        }
    }

    /// Gives the lease up (on clean shutdown), so a standby takes over at once.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else { return };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => info!(lease = %self.name, "released leader lease"),
            Err(e) => warn!(error = %e, "could not release the leader lease"),
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let ours = |transitions: i32, acquire: Option<MicroTime>| LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.lease_duration.as_secs().max(1) as i32),
            acquire_time: acquire,
            renew_time: Some(now.clone()),
            lease_transitions: Some(transitions),
            ..Default::default()
        };
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                spec: Some(ours(0, Some(now.clone()))),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = (spec.holder_identity.clone().filter(|h| !h.is_empty()), spec.renew_time.clone());
        if self.observed.as_ref() != Some(&record) {
            self.observed = Some(record.clone());
            self.observed_at = Instant::now();
        }
        let we_hold = record.0.as_deref() == Some(self.identity.as_str());
        let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        if record.0.is_some() && !we_hold && self.observed_at.elapsed() < duration {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        lease.spec = Some(if we_hold { ours(transitions, spec.acquire_time.clone()) } else { ours(transitions + 1, Some(now.clone())) });
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(l) => {
                let s = l.spec.unwrap_or_default();
                self.observed = Some((s.holder_identity, s.renew_time));
                self.observed_at = Instant::now();
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An API server that accepts connections and never answers (a
    /// black-holed connection): the leader gives up at `renewDeadline`
    /// rather than waiting on the renewal for as long as TCP does.
    #[tokio::test(start_paused = true)]
    async fn a_renewal_that_gets_no_answer_ends_leadership_at_the_renew_deadline() {
        let client = kube::Client::try_from(crate::client::silent_api_server().await).unwrap();
        let mut elector = LeaderElector::new(
            client,
            "default",
            "berth",
            "me".into(),
            Duration::from_secs(15),
            Duration::from_secs(10),
            Duration::from_secs(2),
        );
        let started = Instant::now();
        // Paused time: the wait is on the virtual clock, which advances only
        // when every task is idle. Without the bound, `keep` never returns
        // and the outer deadline (an hour) ends the test as a failure.
        let kept = tokio::time::timeout(Duration::from_secs(3600), elector.keep()).await;
        assert!(kept.is_ok(), "keep() still waiting on a renewal after an hour");
        assert!(started.elapsed() <= Duration::from_secs(10), "gave up after {:?}, beyond renewDeadline", started.elapsed());
    }
}
