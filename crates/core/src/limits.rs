//! Rate limits, token quotas and IP allow-lists, per key and per tenant.
//!
//! Requests: a bucket per key and per tenant, taken from both or neither at
//! authentication. LLM tokens (prompt + completion, embeddings' inputs too): a bucket per
//! minute, charged when a request's usage is known and checked before the next one is
//! admitted (so one large request may overdraw it; the next waits until it refills), and
//! a count per calendar month (UTC) from the recorded daily usage.
//!
//! The buckets live in the metadata database (`aiaas_store::Gcra`), so every replica
//! draws from the same ones. The monthly count is read from the recorded usage at most
//! every few seconds per key and tenant, plus what this replica charged since: replicas
//! together may overshoot a monthly quota by the usage of those few seconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aiaas_store::{Gcra, Metadata, RateDecision};
use aiaas_types::{IpNet, Limits, Principal};

use crate::{ApiKeyRecord, CoreError, Result};

/// How long a tenant's limits are cached between database reads.
const TENANT_LIMITS_TTL: Duration = Duration::from_secs(5);
/// How long a monthly count read from the database is trusted.
const MONTH_TTL: Duration = Duration::from_secs(3);

/// Where a caller stands against its request limit (for the `X-RateLimit-*` headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
}

/// A month's token count: (month "YYYY-MM", tokens, read from the database at).
type MonthCount = (String, u64, Instant);

/// The limits service: admits requests, meters tokens. Owns the caches of tenants'
/// limits and monthly counts; the buckets themselves live in the database.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<LimiterState>,
}

struct LimiterState {
    meta: Metadata,
    months: Mutex<HashMap<String, MonthCount>>,
    tenant_limits: Mutex<HashMap<String, (Limits, Instant)>>,
}

fn now_us() -> i64 {
    aiaas_types::now_ms().saturating_mul(1000)
}

fn request_bucket(l: &Limits) -> Option<Gcra> {
    l.requests_per_minute
        .map(|rpm| Gcra::per_minute(u64::from(rpm), u64::from(l.burst.unwrap_or(rpm))))
}

fn token_bucket(l: &Limits) -> Option<Gcra> {
    l.tokens_per_minute.map(|tpm| Gcra::per_minute(tpm, tpm))
}

fn status_of(g: Gcra, tat: i64, now: i64) -> RateStatus {
    RateStatus {
        limit: u32::try_from(g.capacity).unwrap_or(u32::MAX),
        remaining: u32::try_from(g.remaining(tat, now).max(0)).unwrap_or(u32::MAX),
        reset_secs: (g.until_full(tat, now).max(0) as u64).div_ceil(1_000_000),
    }
}

fn limited(who: &str, g: Gcra, what: &str, wait_us: i64) -> CoreError {
    let secs = (wait_us.max(1) as u64).div_ceil(1_000_000).max(1);
    CoreError::RateLimited {
        message: format!(
            "{what} limit of the {who} reached ({} per minute); retry in {secs} s",
            60_000_000 / g.interval_us.max(1)
        ),
        retry_after_secs: secs,
        limit: u32::try_from(g.capacity).unwrap_or(u32::MAX),
    }
}

impl Limiter {
    pub(crate) fn new(meta: Metadata) -> Limiter {
        Limiter {
            inner: Arc::new(LimiterState {
                meta,
                months: Mutex::new(HashMap::new()),
                tenant_limits: Mutex::new(HashMap::new()),
            }),
        }
    }

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
        let meta = &self.inner.meta;
        let now = now_us();
        let mut status = None;
        let key_bucket = request_bucket(&record.limits);
        let key_name = format!("key:{}:requests", principal.key_id);
        if let Some(g) = key_bucket {
            match meta.rate_take(&key_name, g, 1, now).await? {
                RateDecision::Admitted { tat } => status = Some(status_of(g, tat, now)),
                RateDecision::Refused { wait_us } => {
                    return Err(limited("key", g, "rate", wait_us))
                }
            }
        }
        if let Some(g) = request_bucket(&tenant_limits) {
            let name = format!("tenant:{}:requests", principal.tenant_id);
            match meta.rate_take(&name, g, 1, now).await? {
                // The headers describe the key's own limit, else the tenant's.
                RateDecision::Admitted { tat } => {
                    status = status.or(Some(status_of(g, tat, now)));
                }
                RateDecision::Refused { wait_us } => {
                    if let Some(k) = key_bucket {
                        meta.rate_refund(&key_name, k, 1).await?;
                    }
                    return Err(limited("tenant", g, "rate", wait_us));
                }
            }
        }
        Ok(status)
    }

    /// Before a model call that consumes LLM tokens: 429 while the key's or the tenant's
    /// tokens-per-minute bucket is empty, or its monthly quota is used up.
    pub(crate) async fn check_token_quota(&self, principal: &Principal) -> Result<()> {
        let key_limits = self
            .inner
            .meta
            .key(&principal.key_id)
            .await?
            .map(|k| k.limits)
            .unwrap_or_default();
        let tenant_limits = self.tenant_limits(&principal.tenant_id).await?;
        let month = month_of(aiaas_types::now_ms());
        let now = now_us();
        for (who, id, limits) in [
            ("key", &principal.key_id, key_limits),
            ("tenant", &principal.tenant_id, tenant_limits),
        ] {
            if let Some(g) = token_bucket(&limits) {
                let tat = self
                    .inner
                    .meta
                    .rate_tat(&format!("{who}:{id}:tokens"))
                    .await?;
                let wait = g.until_available(tat, now);
                if wait > 0 {
                    return Err(limited(who, g, "token rate", wait));
                }
            }
            if let Some(quota) = limits.tokens_per_month {
                let used = self.tokens_this_month(who, id, &month).await?;
                if used >= quota {
                    return Err(CoreError::RateLimited {
                        message: format!(
                            "monthly token quota of the {who} used up ({used} of {quota} tokens in {month})"
                        ),
                        retry_after_secs: seconds_to_next_month(aiaas_types::now_ms()),
                        limit: u32::try_from(quota).unwrap_or(u32::MAX),
                    });
                }
            }
        }
        Ok(())
    }

    /// Count tokens a finished request used against its key's and tenant's limits.
    pub(crate) async fn charge_tokens(&self, principal: &Principal, tokens: u64) {
        let month = month_of(aiaas_types::now_ms());
        {
            let mut months = self.inner.months.lock().unwrap_or_else(|e| e.into_inner());
            for name in [
                format!("key:{}", principal.key_id),
                format!("tenant:{}", principal.tenant_id),
            ] {
                if let Some((m, used, _)) = months.get_mut(&name) {
                    if *m == month {
                        *used += tokens;
                    }
                }
            }
        }
        let key_limits = match self.inner.meta.key(&principal.key_id).await {
            Ok(k) => k.map(|k| k.limits).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "tokens not charged to the key's rate limit");
                return;
            }
        };
        let tenant_limits = self
            .tenant_limits(&principal.tenant_id)
            .await
            .unwrap_or_default();
        let now = now_us();
        for (who, id, limits) in [
            ("key", &principal.key_id, key_limits),
            ("tenant", &principal.tenant_id, tenant_limits),
        ] {
            if let Some(g) = token_bucket(&limits) {
                let name = format!("{who}:{id}:tokens");
                if let Err(e) = self
                    .inner
                    .meta
                    .rate_charge(&name, g, tokens.min(i64::MAX as u64) as i64, now)
                    .await
                {
                    tracing::warn!(error = %e, "tokens not charged to a rate limit");
                }
            }
        }
    }

    /// Tokens used this month by a key or tenant: the recorded usage (re-read every few
    /// seconds, so other replicas' usage counts) plus what this replica charged since.
    async fn tokens_this_month(&self, who: &str, id: &str, month: &str) -> Result<u64> {
        let name = format!("{who}:{id}");
        {
            let months = self.inner.months.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((m, used, at)) = months.get(&name) {
                if m == month && at.elapsed() < MONTH_TTL {
                    return Ok(*used);
                }
            }
        }
        let (key, tenant) = match who {
            "key" => (Some(id), None),
            _ => (None, Some(id)),
        };
        let used = self.inner.meta.tokens_in_month(key, tenant, month).await?;
        self.inner
            .months
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, (month.to_string(), used, Instant::now()));
        Ok(used)
    }

    async fn tenant_limits(&self, tenant_id: &str) -> Result<Limits> {
        {
            let cache = self
                .inner
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
            .tenant_limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant_id.to_string(), (limits, Instant::now()));
        Ok(limits)
    }

    /// Forget a tenant's cached limits (after they change here).
    pub(crate) fn forget_tenant_limits(&self, tenant_id: &str) {
        self.inner
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
    list.iter()
        .map(|item| {
            let net = IpNet::parse(item).map_err(CoreError::InvalidInput)?;
            let item = item.trim();
            // A mapped entry is stored as the IPv4 range it means, so what a caller reads
            // back is what is enforced; other entries keep the caller's spelling.
            Ok(if item.to_ascii_lowercase().contains("::ffff:") {
                net.to_string()
            } else {
                item.to_string()
            })
        })
        .collect()
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

/// Seconds from `ms` to the first instant of the next calendar month (UTC), rounded up.
fn seconds_to_next_month(ms: i64) -> u64 {
    let left = aiaas_types::next_month_start_ms(ms)
        .saturating_sub(ms)
        .max(0);
    (left / 1000) as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        let ms = 1_795_000_000_000; // 2026-11-18
        assert_eq!(month_of(ms), "2026-11");
        let s = seconds_to_next_month(ms);
        assert_eq!(aiaas_types::utc_date(ms + s as i64 * 1000), (2026, 12, 1));
        let new_year_eve = 20_088 * 86_400_000; // 2024-12-31
        assert_eq!(month_of(new_year_eve), "2024-12");
        let s = seconds_to_next_month(new_year_eve);
        assert_eq!(
            aiaas_types::utc_date(new_year_eve + s as i64 * 1000),
            (2025, 1, 1)
        );
    }
}
