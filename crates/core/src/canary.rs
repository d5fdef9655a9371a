//! Canary releases, for every kind of tenant model: a deployment splits the requests that
//! name no version between its stable version and a canary, counts each version's
//! outcomes, and ends the canary by promotion, by rollback, or by itself when the canary's
//! error rate exceeds the stable version's by the deployment's margin.
//!
//! The split is deterministic per replica: request `n` of a model goes to the canary when
//! `floor((n + 1) p / 100) > floor(n p / 100)`, so every hundred requests carry exactly `p`
//! canary requests (a random draw would stray by several points over a few hundred).
//! Outcome windows (one-second buckets) are per replica too: each judges the traffic it
//! served. Ending a canary is one conditional update in the database, so whichever
//! replica sees the failure first rolls back, once, and every replica follows at its next
//! request (requests read the deployment from the shared, invalidated cache).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use aiaas_store::{AutoRollback, DeploymentRecord, ModelEventRecord};
use aiaas_types::{Permission, Principal};
use serde_json::json;

use crate::audit::{AuditEvent, AuditOutcome};
use crate::auth::require;
use crate::models::{Models, Serving};
use crate::{CoreError, Result};

/// The longest outcome window a rule may ask for (also how long buckets are kept).
pub const MAX_WINDOW_SECS: i64 = 3600;

/// A canary as a deploy asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryRequest {
    pub version: i64,
    /// Share of the requests that name no version, 0-100.
    pub percent: i64,
    pub auto_rollback: Option<AutoRollback>,
}

impl CanaryRequest {
    pub(crate) fn check(&self, stable: i64) -> Result<()> {
        if self.version == stable {
            return Err(CoreError::InvalidInput(format!(
                "the canary must be another version than the stable one ({stable})"
            )));
        }
        if !(0..=100).contains(&self.percent) {
            return Err(CoreError::InvalidInput(format!(
                "canary percent must be 0-100, got {}",
                self.percent
            )));
        }
        if let Some(r) = &self.auto_rollback {
            if !(0.0..=1.0).contains(&r.max_error_rate_increase)
                || !(1..=MAX_WINDOW_SECS).contains(&r.window_secs)
                || !(1..=1_000_000).contains(&r.min_requests)
            {
                return Err(CoreError::InvalidInput(format!(
                    "auto_rollback needs max_error_rate_increase 0-1, window_secs 1-{MAX_WINDOW_SECS} \
                     and min_requests 1-1000000"
                )));
            }
        }
        Ok(())
    }
}

/// Which side of a deployment answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Stable,
    Canary,
    /// The caller named the version (`name:3`, `name:alias`).
    Pinned,
}

impl Track {
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Stable => "stable",
            Track::Canary => "canary",
            Track::Pinned => "pinned",
        }
    }
}

/// Requests a version answered, and how many of them failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) total: u64,
    pub(crate) failed: u64,
}

impl Counts {
    fn rate(self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.failed as f64 / self.total as f64
        }
    }
}

/// One version's outcomes in one-second buckets, oldest first.
#[derive(Default)]
struct Window {
    buckets: VecDeque<(i64, Counts)>,
}

impl Window {
    fn record(&mut self, sec: i64, failed: bool) {
        match self.buckets.back_mut() {
            Some((s, c)) if *s == sec => {
                c.total += 1;
                c.failed += u64::from(failed);
            }
            _ => self.buckets.push_back((
                sec,
                Counts {
                    total: 1,
                    failed: u64::from(failed),
                },
            )),
        }
        while self
            .buckets
            .front()
            .is_some_and(|(s, _)| *s <= sec - MAX_WINDOW_SECS)
        {
            self.buckets.pop_front();
        }
    }

    fn since(&self, from_sec: i64) -> Counts {
        self.buckets
            .iter()
            .filter(|(s, _)| *s >= from_sec)
            .fold(Counts::default(), |a, (_, c)| Counts {
                total: a.total + c.total,
                failed: a.failed + c.failed,
            })
    }
}

/// This replica's traffic state: requests routed per model, outcomes per version.
#[derive(Default)]
pub(crate) struct Traffic {
    routed: Mutex<HashMap<String, u64>>,
    windows: Mutex<HashMap<(String, i64), Window>>,
}

impl Traffic {
    /// Whether this request of `model_id` goes to a canary taking `percent`.
    pub(crate) fn to_canary(&self, model_id: &str, percent: i64) -> bool {
        let p = percent.clamp(0, 100) as u64;
        let mut routed = self.routed.lock().expect("traffic lock");
        let n = routed.entry(model_id.to_string()).or_default();
        let pick = (*n + 1) * p / 100 > *n * p / 100;
        *n += 1;
        pick
    }

    fn record(&self, model_id: &str, version: i64, failed: bool, now_ms: i64) {
        self.windows
            .lock()
            .expect("traffic lock")
            .entry((model_id.to_string(), version))
            .or_default()
            .record(now_ms.div_euclid(1000), failed);
    }

    /// A version's outcomes from `from_ms` on.
    fn counts(&self, model_id: &str, version: i64, from_ms: i64) -> Counts {
        self.windows
            .lock()
            .expect("traffic lock")
            .get(&(model_id.to_string(), version))
            .map_or_else(Counts::default, |w| w.since(from_ms.div_euclid(1000)))
    }

    /// Forget a model (undeployed or deleted).
    pub(crate) fn forget(&self, model_id: &str) {
        self.routed.lock().expect("traffic lock").remove(model_id);
        self.windows
            .lock()
            .expect("traffic lock")
            .retain(|(m, _), _| m != model_id);
    }
}

/// Why a canary is rolled back: both versions' outcomes over the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Verdict {
    pub(crate) canary: Counts,
    pub(crate) stable: Counts,
}

/// The rule applied: roll back when the canary has answered at least `min_requests` and
/// its error rate exceeds the stable version's by more than the margin.
pub(crate) fn judge(rule: &AutoRollback, canary: Counts, stable: Counts) -> Option<Verdict> {
    (canary.total >= rule.min_requests as u64
        && canary.rate() - stable.rate() > rule.max_error_rate_increase)
        .then_some(Verdict { canary, stable })
}

/// Whether an outcome counts against the version: its own failures (a model that errs,
/// will not load, or times out), not the caller's mistakes or an overloaded queue.
fn failed<T>(result: &Result<T>) -> bool {
    matches!(
        result,
        Err(CoreError::Internal(_)
            | CoreError::Unavailable(_)
            | CoreError::Integrity(_)
            | CoreError::TimedOut(_))
    )
}

impl Models {
    /// Count a request's outcome for the version that answered it (metrics, and the
    /// canary's window), and roll a failing canary back when its rule says so.
    pub(crate) fn settle<T>(&self, serving: &Serving, result: &Result<T>) {
        let is_failure = failed(result);
        let outcome = match result {
            Ok(_) => "ok",
            Err(CoreError::Overloaded { .. }) => "refused",
            Err(_) if is_failure => "error",
            Err(_) => "invalid",
        };
        let version = serving.version.version.to_string();
        self.inner().metrics.inc(
            "aiaas_model_requests_total",
            "Requests answered by tenants' models, by version, deployment track and outcome.",
            &[
                ("tenant", serving.model.tenant_id.as_str()),
                ("model", serving.model.name.as_str()),
                ("version", version.as_str()),
                ("track", serving.track.as_str()),
                ("outcome", outcome),
            ],
            1,
        );
        let Some(canary) = &serving.deployment.canary else {
            return;
        };
        let traffic = &self.inner().traffic;
        let now = aiaas_types::now_ms();
        let model_id = &serving.model.id;
        traffic.record(model_id, serving.version.version, is_failure, now);
        let Some(rule) = canary.auto_rollback else {
            return;
        };
        if !is_failure || serving.version.version != canary.version {
            return;
        }
        let from = (now - rule.window_secs * 1000).max(canary.started_at);
        let canary_counts = traffic.counts(model_id, canary.version, from);
        let stable_counts = traffic.counts(model_id, serving.deployment.version, from);
        if let Some(verdict) = judge(&rule, canary_counts, stable_counts) {
            let models = self.clone();
            let model = serving.model.clone();
            let deployment = serving.deployment.clone();
            tokio::spawn(async move {
                if let Err(e) = models
                    .auto_rollback(&model, &deployment, rule, verdict)
                    .await
                {
                    tracing::error!(model = %model.name, error = %e, "automatic rollback failed");
                }
            });
        }
    }

    /// End a failing canary (once, whichever replica or request gets there first), with
    /// the reason in the model's events and the tenant's audit log.
    async fn auto_rollback(
        &self,
        model: &aiaas_store::ModelRecord,
        deployment: &DeploymentRecord,
        rule: AutoRollback,
        verdict: Verdict,
    ) -> Result<()> {
        let Some(canary) = &deployment.canary else {
            return Ok(());
        };
        let meta = &self.inner().meta;
        let Some(_) = meta.end_canary(&model.id, canary.version, false).await? else {
            return Ok(());
        };
        self.unload_version(&model.id, canary.version).await;
        let reason = format!(
            "canary version {} failed {} of {} requests ({:.1}%) against {} of {} ({:.1}%) for stable version {} over the last {} s, more than the allowed increase of {:.1} points",
            canary.version,
            verdict.canary.failed,
            verdict.canary.total,
            verdict.canary.rate() * 100.0,
            verdict.stable.failed,
            verdict.stable.total,
            verdict.stable.rate() * 100.0,
            deployment.version,
            rule.window_secs,
            rule.max_error_rate_increase * 100.0,
        );
        let detail = json!({
            "canary_version": canary.version,
            "stable_version": deployment.version,
            "canary_requests": verdict.canary.total,
            "canary_errors": verdict.canary.failed,
            "canary_error_rate": verdict.canary.rate(),
            "stable_requests": verdict.stable.total,
            "stable_errors": verdict.stable.failed,
            "stable_error_rate": verdict.stable.rate(),
            "rule": rule,
            "reason": reason,
        });
        tracing::warn!(model = %model.name, %reason, "canary rolled back automatically");
        meta.append_model_event(&model.id, "canary.auto_rollback", &detail)
            .await?;
        self.inner()
            .audit
            .append_system(
                &model.tenant_id,
                AuditEvent {
                    action: "models.auto_rollback".into(),
                    target: Some(format!("/api/v1/models/{}", model.name)),
                    outcome: AuditOutcome::Success,
                    source: None,
                    detail,
                },
            )
            .await;
        Ok(())
    }

    /// Make the canary the deployed version.
    pub async fn promote(&self, principal: &Principal, name: &str) -> Result<DeploymentRecord> {
        self.end_canary_by(principal, name, true).await
    }

    /// Give all traffic back to the stable version.
    pub async fn rollback(&self, principal: &Principal, name: &str) -> Result<DeploymentRecord> {
        self.end_canary_by(principal, name, false).await
    }

    async fn end_canary_by(
        &self,
        principal: &Principal,
        name: &str,
        promote: bool,
    ) -> Result<DeploymentRecord> {
        require(principal, Permission::Deploy)?;
        let model = self.find_model(principal, name).await?;
        let meta = &self.inner().meta;
        let no_canary = || {
            CoreError::Conflict(format!(
                "model {name:?} has no canary; start one with POST /api/v1/models/{name}/deploy \
                 {{\"canary\": {{\"version\": N, \"percent\": P}}}}"
            ))
        };
        let before = meta.deployment(&model.id).await?.ok_or_else(no_canary)?;
        let canary = before.canary.clone().ok_or_else(no_canary)?;
        let after = meta
            .end_canary(&model.id, canary.version, promote)
            .await?
            .ok_or_else(no_canary)?;
        let (kind, retired) = if promote {
            ("canary.promote", before.version)
        } else {
            ("canary.rollback", canary.version)
        };
        self.unload_version(&model.id, retired).await;
        meta.append_model_event(
            &model.id,
            kind,
            &json!({
                "stable_version": before.version,
                "canary_version": canary.version,
                "percent": canary.percent,
                "version": after.version,
                "by": principal.key_id,
            }),
        )
        .await?;
        tracing::info!(model = %name, kind, version = after.version, "canary ended");
        Ok(after)
    }

    /// A model's events, newest first (at most `limit`, 1-1000).
    pub async fn events(
        &self,
        principal: &Principal,
        name: &str,
        limit: i64,
    ) -> Result<Vec<ModelEventRecord>> {
        require(principal, Permission::ReadModels)?;
        let model = self.find_model(principal, name).await?;
        Ok(self
            .inner()
            .meta
            .model_events(&model.id, limit.clamp(1, 1000))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_exact_in_every_hundred_requests() {
        let traffic = Traffic::default();
        for percent in [0, 1, 10, 25, 33, 50, 99, 100] {
            let model = format!("m{percent}");
            for _ in 0..3 {
                let canary = (0..100)
                    .filter(|_| traffic.to_canary(&model, percent))
                    .count();
                assert_eq!(canary as i64, percent);
            }
        }
        // Spread out, not in a block: 10% sends one in each ten.
        let picks: Vec<bool> = (0..20).map(|_| traffic.to_canary("spread", 10)).collect();
        assert_eq!(picks.iter().filter(|p| **p).count(), 2);
        assert!(picks[..10].contains(&true) && picks[10..].contains(&true));
    }

    #[test]
    fn windows_count_what_happened_since_a_time() {
        let traffic = Traffic::default();
        traffic.record("m", 1, false, 1_000);
        traffic.record("m", 1, true, 1_500);
        traffic.record("m", 1, true, 5_000);
        traffic.record("m", 2, true, 5_000);
        assert_eq!(
            traffic.counts("m", 1, 0),
            Counts {
                total: 3,
                failed: 2
            }
        );
        assert_eq!(
            traffic.counts("m", 1, 2_000),
            Counts {
                total: 1,
                failed: 1
            }
        );
        assert_eq!(
            traffic.counts("m", 2, 0),
            Counts {
                total: 1,
                failed: 1
            }
        );
        assert_eq!(traffic.counts("m", 3, 0), Counts::default());
        // Old buckets go once they are past the longest window.
        traffic.record("m", 1, false, 1_000 + MAX_WINDOW_SECS * 1000);
        assert_eq!(
            traffic.counts("m", 1, 0),
            Counts {
                total: 2,
                failed: 1
            }
        );
        traffic.forget("m");
        assert_eq!(traffic.counts("m", 1, 0), Counts::default());
    }

    #[test]
    fn rollback_needs_enough_requests_and_a_rate_past_the_margin() {
        let rule = AutoRollback {
            max_error_rate_increase: 0.05,
            window_secs: 60,
            min_requests: 50,
        };
        let c = |total, failed| Counts { total, failed };
        // Too few canary requests, however bad.
        assert_eq!(judge(&rule, c(49, 49), c(100, 0)), None);
        // Within the margin of the stable version's own errors.
        assert_eq!(judge(&rule, c(100, 14), c(100, 10)), None);
        assert_eq!(judge(&rule, c(100, 15), c(100, 10)), None);
        // Past it.
        assert!(judge(&rule, c(100, 16), c(100, 10)).is_some());
        assert!(judge(&rule, c(50, 50), c(0, 0)).is_some());
        // A canary no worse than a failing stable version stays.
        assert_eq!(judge(&rule, c(100, 90), c(100, 90)), None);
    }

    #[test]
    fn requests_are_checked() {
        let ok = CanaryRequest {
            version: 2,
            percent: 10,
            auto_rollback: Some(AutoRollback {
                max_error_rate_increase: 0.05,
                window_secs: 60,
                min_requests: 50,
            }),
        };
        assert!(ok.check(1).is_ok());
        assert!(ok.check(2).is_err());
        assert!(CanaryRequest {
            percent: 101,
            ..ok.clone()
        }
        .check(1)
        .is_err());
        let mut bad = ok.clone();
        bad.auto_rollback.as_mut().unwrap().window_secs = 0;
        assert!(bad.check(1).is_err());
        let mut bad = ok;
        bad.auto_rollback.as_mut().unwrap().max_error_rate_increase = 1.5;
        assert!(bad.check(1).is_err());
    }
}
