//! Rate limits, token quotas and IP allow-lists, per key and per tenant.
//!
//! Requests: a token bucket per key and per tenant, taken from both or neither at
//! authentication. LLM tokens (prompt + completion, embeddings' inputs too): a bucket per
//! minute, charged when a request's usage is known and checked before the next one is
//! admitted (so one large request may overdraw it; the next waits until it refills), and
//! a count per calendar month (UTC), seeded from the recorded daily usage. The state is
//! this process's (replicas sharing limits: the scale-out issue).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aiaas_types::{IpNet, Limits, Principal};

use crate::{ApiKeyRecord, CoreError, Platform, Result};

/// How long a tenant's limits are cached between database reads.
const TENANT_LIMITS_TTL: Duration = Duration::from_secs(5);

/// Where a caller stands against its request limit (for the `X-RateLimit-*` headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    capacity: f64,
    per_sec: f64,
    level: f64,
    at: Instant,
}

impl Bucket {
    fn new(capacity: f64, per_minute: f64, now: Instant) -> Bucket {
        Bucket {
            capacity,
            per_sec: per_minute / 60.0,
            level: capacity,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + dt * self.per_sec).min(self.capacity);
        self.at = now;
    }

    /// Seconds until `n` is available (0 when it is now).
    fn wait_for(&self, n: f64) -> f64 {
        if self.level >= n {
            0.0
        } else {
            (n - self.level) / self.per_sec
        }
    }

    fn status(&self) -> RateStatus {
        RateStatus {
            limit: self.capacity as u32,
            remaining: self.level.max(0.0) as u32,
            reset_secs: ((self.capacity - self.level) / self.per_sec)
                .ceil()
                .max(0.0) as u64,
        }
    }
}

#[derive(Debug, Default)]
struct Account {
    limits: Limits,
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    /// (month "YYYY-MM", tokens used in it) once seeded from the database.
    month: Option<(String, u64)>,
}

impl Account {
    /// Follow a change of limits, keeping what was used.
    fn configure(&mut self, limits: Limits, now: Instant) {
        if self.limits == limits
            && (self.requests.is_some() || limits.requests_per_minute.is_none())
        {
            return;
        }
        self.requests = limits.requests_per_minute.map(|rpm| {
            let capacity = f64::from(limits.burst.unwrap_or(rpm));
            let mut b = Bucket::new(capacity, f64::from(rpm), now);
            if let Some(old) = &self.requests {
                b.level = old.level.min(capacity);
            }
            b
        });
        self.tokens = limits.tokens_per_minute.map(|tpm| {
            let mut b = Bucket::new(tpm as f64, tpm as f64, now);
            if let Some(old) = &self.tokens {
                b.level = old.level.min(tpm as f64);
            }
            b
        });
        self.limits = limits;
    }
}

#[derive(Default)]
pub(crate) struct Limiter {
    keys: Mutex<HashMap<String, Account>>,
    tenants: Mutex<HashMap<String, Account>>,
    tenant_limits: Mutex<HashMap<String, (Limits, Instant)>>,
}

impl Platform {
    /// Admit a request of an authenticated key from `ip`: the key's IP allow-list (403),
    /// then one request from the key's and the tenant's buckets (429).
    pub async fn admit_request(
        &self,
        principal: &Principal,
        record: &ApiKeyRecord,
        ip: Option<IpAddr>,
    ) -> Result<Option<RateStatus>> {
        check_ip(record, ip)?;
        let tenant_limits = self.tenant_limits(&principal.tenant_id).await?;
        let now = Instant::now();
        let limiter = &self.inner.limiter;
        let mut keys = limiter.keys.lock().unwrap_or_else(|e| e.into_inner());
        let mut tenants = limiter.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let key = keys.entry(principal.key_id.clone()).or_default();
        key.configure(record.limits, now);
        let tenant = tenants.entry(principal.tenant_id.clone()).or_default();
        tenant.configure(tenant_limits, now);
        let mut wait: f64 = 0.0;
        let mut limited_by = None;
        for (who, acc) in [("key", &mut *key), ("tenant", &mut *tenant)] {
            if let Some(b) = acc.requests.as_mut() {
                b.refill(now);
                let w = b.wait_for(1.0);
                if w > wait {
                    wait = w;
                    limited_by = Some((who, b.capacity as u32));
                }
            }
        }
        if let Some((who, limit)) = limited_by {
            return Err(CoreError::RateLimited {
                message: format!(
                    "rate limit of the {who} reached ({limit} requests per minute with bursts); retry in {:.0} s",
                    wait.ceil()
                ),
                retry_after_secs: wait.ceil().max(1.0) as u64,
                limit,
            });
        }
        for acc in [&mut *key, &mut *tenant] {
            if let Some(b) = acc.requests.as_mut() {
                b.level -= 1.0;
            }
        }
        // The headers describe the key's own limit, else the tenant's.
        Ok(key
            .requests
            .as_ref()
            .or(tenant.requests.as_ref())
            .map(Bucket::status))
    }

    /// Before a model call that consumes LLM tokens: 429 while the key's or the tenant's
    /// tokens-per-minute bucket is empty, or its monthly quota is used up.
    pub(crate) async fn check_token_quota(&self, principal: &Principal) -> Result<()> {
        let month = month_of(aiaas_types::now_ms());
        self.seed_month(principal, &month).await?;
        let now = Instant::now();
        let limiter = &self.inner.limiter;
        let mut keys = limiter.keys.lock().unwrap_or_else(|e| e.into_inner());
        let mut tenants = limiter.tenants.lock().unwrap_or_else(|e| e.into_inner());
        for (who, acc) in [
            ("key", keys.get_mut(&principal.key_id)),
            ("tenant", tenants.get_mut(&principal.tenant_id)),
        ] {
            let Some(acc) = acc else { continue };
            if let Some(b) = acc.tokens.as_mut() {
                b.refill(now);
                if b.level <= 0.0 {
                    let wait = b.wait_for(1.0).ceil().max(1.0);
                    return Err(CoreError::RateLimited {
                        message: format!(
                            "token rate limit of the {who} reached ({} tokens per minute); retry in {wait:.0} s",
                            b.capacity
                        ),
                        retry_after_secs: wait as u64,
                        limit: b.capacity as u32,
                    });
                }
            }
            if let (Some(quota), Some((m, used))) = (acc.limits.tokens_per_month, &acc.month) {
                if *m == month && *used >= quota {
                    let wait = seconds_to_next_month(aiaas_types::now_ms());
                    return Err(CoreError::RateLimited {
                        message: format!(
                            "monthly token quota of the {who} used up ({used} of {quota} tokens in {month})"
                        ),
                        retry_after_secs: wait,
                        limit: u32::try_from(quota).unwrap_or(u32::MAX),
                    });
                }
            }
        }
        Ok(())
    }

    /// Count tokens a finished request used against its key's and tenant's limits.
    pub(crate) fn charge_tokens(&self, principal: &Principal, tokens: u64) {
        let month = month_of(aiaas_types::now_ms());
        let limiter = &self.inner.limiter;
        let mut keys = limiter.keys.lock().unwrap_or_else(|e| e.into_inner());
        let mut tenants = limiter.tenants.lock().unwrap_or_else(|e| e.into_inner());
        for acc in [
            keys.get_mut(&principal.key_id),
            tenants.get_mut(&principal.tenant_id),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(b) = acc.tokens.as_mut() {
                b.refill(Instant::now());
                b.level -= tokens as f64;
            }
            if let Some((m, used)) = acc.month.as_mut() {
                if *m == month {
                    *used += tokens;
                }
            }
        }
    }

    /// Load this month's recorded usage into the accounts that have a monthly quota and
    /// have not been seeded for this month yet.
    async fn seed_month(&self, principal: &Principal, month: &str) -> Result<()> {
        let needs = |map: &Mutex<HashMap<String, Account>>, id: &str| {
            let map = map.lock().unwrap_or_else(|e| e.into_inner());
            map.get(id).is_some_and(|a| {
                a.limits.tokens_per_month.is_some()
                    && a.month.as_ref().is_none_or(|(m, _)| m != month)
            })
        };
        let limiter = &self.inner.limiter;
        if needs(&limiter.keys, &principal.key_id) {
            let used = self
                .inner
                .meta
                .tokens_in_month(Some(&principal.key_id), None, month)
                .await?;
            if let Some(a) = limiter
                .keys
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&principal.key_id)
            {
                a.month = Some((month.to_string(), used));
            }
        }
        if needs(&limiter.tenants, &principal.tenant_id) {
            let used = self
                .inner
                .meta
                .tokens_in_month(None, Some(&principal.tenant_id), month)
                .await?;
            if let Some(a) = limiter
                .tenants
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&principal.tenant_id)
            {
                a.month = Some((month.to_string(), used));
            }
        }
        Ok(())
    }

    async fn tenant_limits(&self, tenant_id: &str) -> Result<Limits> {
        {
            let cache = self
                .inner
                .limiter
                .tenant_limits
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some((l, at)) = cache.get(tenant_id) {
                if at.elapsed() < TENANT_LIMITS_TTL {
                    return Ok(*l);
                }
            }
        }
        let limits = self
            .inner
            .meta
            .tenant(tenant_id)
            .await?
            .map(|t| t.limits)
            .unwrap_or_default();
        self.inner
            .limiter
            .tenant_limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant_id.to_string(), (limits, Instant::now()));
        Ok(limits)
    }

    /// Forget a tenant's cached limits (after they change here).
    pub(crate) fn forget_tenant_limits(&self, tenant_id: &str) {
        self.inner
            .limiter
            .tenant_limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tenant_id);
    }
}

/// Parse and check a key's IP allow-list as given by a caller.
pub(crate) fn parse_allowed_ips(list: &[String]) -> Result<Vec<String>> {
    if list.is_empty() {
        return Err(CoreError::InvalidInput(
            "allowed_ips must not be empty (leave it out to allow every address)".into(),
        ));
    }
    for item in list {
        IpNet::parse(item).map_err(CoreError::InvalidInput)?;
    }
    Ok(list.iter().map(|s| s.trim().to_string()).collect())
}

fn check_ip(record: &ApiKeyRecord, ip: Option<IpAddr>) -> Result<()> {
    let Some(list) = &record.allowed_ips else {
        return Ok(());
    };
    let allowed = ip.is_some_and(|ip| {
        list.iter()
            .filter_map(|n| IpNet::parse(n).ok())
            .any(|net| net.contains(ip))
    });
    if allowed {
        Ok(())
    } else {
        Err(CoreError::Forbidden(match ip {
            Some(ip) => format!("this API key may not be used from {ip}"),
            None => "this API key is limited to some addresses and the client's is unknown".into(),
        }))
    }
}

fn month_of(ms: i64) -> String {
    let (y, m, _) = aiaas_types::utc_date(ms);
    format!("{y:04}-{m:02}")
}

/// Seconds from `ms` to the first instant of the next calendar month (UTC).
fn seconds_to_next_month(ms: i64) -> u64 {
    let (y, m, _) = aiaas_types::utc_date(ms);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let start = days_from_civil(ny, nm, 1) * 86_400_000;
    ((start - ms).max(0) / 1000) as u64 + 1
}

/// Days since 1970-01-01 of a civil date (the inverse of `utc_date`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(
            days_from_civil(2026, 12, 1) * 86_400_000 / 1000,
            1_796_083_200
        );
        let ms = 1_795_000_000_000; // 2026-11-18
        assert_eq!(month_of(ms), "2026-11");
        let s = seconds_to_next_month(ms);
        assert_eq!(aiaas_types::utc_date(ms + s as i64 * 1000), (2026, 12, 1));
        assert_eq!(
            month_of(days_from_civil(2024, 12, 31) * 86_400_000),
            "2024-12"
        );
        assert_eq!(
            aiaas_types::utc_date(
                (days_from_civil(2024, 12, 31) * 86_400_000)
                    + seconds_to_next_month(days_from_civil(2024, 12, 31) * 86_400_000) as i64
                        * 1000
            ),
            (2025, 1, 1)
        );
    }

    #[test]
    fn bucket_refills_and_bursts() {
        let t0 = Instant::now();
        let mut b = Bucket::new(3.0, 60.0, t0);
        for _ in 0..3 {
            assert_eq!(b.wait_for(1.0), 0.0);
            b.level -= 1.0;
        }
        assert!(
            (b.wait_for(1.0) - 1.0).abs() < 1e-9,
            "one per second at 60/min"
        );
        b.refill(t0 + Duration::from_millis(1500));
        assert_eq!(b.wait_for(1.0), 0.0);
        b.refill(t0 + Duration::from_secs(100));
        assert_eq!(b.level, 3.0, "never above the burst");
        assert_eq!(
            b.status(),
            RateStatus {
                limit: 3,
                remaining: 3,
                reset_secs: 0
            }
        );
    }
}
