//! Rate limits shared by every replica: one row per bucket in `rate_limits`, run as a
//! generic cell rate algorithm (GCRA). A bucket's whole state is its theoretical arrival
//! time `tat` (epoch microseconds): each unit taken moves it `interval` forward, and a
//! take is admitted while `tat` stays within `capacity` intervals of now. One upsert
//! decides and records a take atomically on either database, so concurrent replicas
//! never admit more than the bucket holds.

use sqlx::Row;

use crate::{Metadata, Result};

/// A bucket's shape: refills one unit every `interval_us`, holds `capacity` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    pub interval_us: i64,
    pub capacity: i64,
}

impl Gcra {
    /// `per_minute` units a minute, bursts of `capacity`.
    pub fn per_minute(per_minute: u64, capacity: u64) -> Gcra {
        Gcra {
            // Rounded up: a limit is never exceeded, only met a hair early.
            interval_us: 60_000_000u64.div_ceil(per_minute.max(1)).max(1) as i64,
            capacity: capacity.max(1).min(i64::MAX as u64 / 60_000_000) as i64,
        }
    }

    fn tolerance(&self) -> i64 {
        self.interval_us.saturating_mul(self.capacity)
    }

    /// Units left at `now_us` for a bucket at `tat` (negative when overdrawn).
    pub fn remaining(&self, tat: i64, now_us: i64) -> i64 {
        let used = tat.max(now_us) - now_us;
        (self.tolerance() - used).div_euclid(self.interval_us)
    }

    /// Microseconds until the bucket is full again.
    pub fn until_full(&self, tat: i64, now_us: i64) -> i64 {
        tat.max(now_us) - now_us
    }

    /// Microseconds until at least one unit is available (0 when one is).
    pub fn until_available(&self, tat: i64, now_us: i64) -> i64 {
        (tat.max(now_us) - now_us + self.interval_us - self.tolerance()).max(0)
    }
}

/// The answer to a take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Taken; the bucket's new arrival time.
    Admitted { tat: i64 },
    /// Not taken: this many microseconds until it would be.
    Refused { wait_us: i64 },
}

/// `max(tat, now)`, portably (SQLite's MAX and PostgreSQL's GREATEST differ).
const BASE: &str = "(CASE WHEN rate_limits.tat > $1 THEN rate_limits.tat ELSE $1 END)";

impl Metadata {
    /// Take `cost` units from bucket `name` if they fit, all or nothing.
    pub async fn rate_take(
        &self,
        name: &str,
        g: Gcra,
        cost: i64,
        now_us: i64,
    ) -> Result<RateDecision> {
        let step = g.interval_us.saturating_mul(cost);
        let row = sqlx::query(&format!(
            "INSERT INTO rate_limits (name, tat) VALUES ($3, $1 + $2) \
             ON CONFLICT (name) DO UPDATE SET tat = {BASE} + $2 \
             WHERE {BASE} + $2 - $1 <= $4 RETURNING tat"
        ))
        .bind(now_us)
        .bind(step)
        .bind(name)
        .bind(g.tolerance())
        .fetch_optional(&self.pool)
        .await?;
        if let Some(r) = row {
            return Ok(RateDecision::Admitted { tat: r.try_get(0)? });
        }
        let tat = self.rate_tat(name).await?;
        Ok(RateDecision::Refused {
            wait_us: (tat.max(now_us) + step - now_us - g.tolerance()).max(1),
        })
    }

    /// Add `cost` units without checking (usage known after the fact may overdraw the
    /// bucket; the next take waits until it refills). Returns the new arrival time.
    pub async fn rate_charge(&self, name: &str, g: Gcra, cost: i64, now_us: i64) -> Result<i64> {
        let step = g.interval_us.saturating_mul(cost);
        let row = sqlx::query(&format!(
            "INSERT INTO rate_limits (name, tat) VALUES ($3, $1 + $2) \
             ON CONFLICT (name) DO UPDATE SET tat = {BASE} + $2 RETURNING tat"
        ))
        .bind(now_us)
        .bind(step)
        .bind(name)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Give back `cost` units taken by a request that was refused elsewhere.
    pub async fn rate_refund(&self, name: &str, g: Gcra, cost: i64) -> Result<()> {
        sqlx::query("UPDATE rate_limits SET tat = tat - $1 WHERE name = $2")
            .bind(g.interval_us.saturating_mul(cost))
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A bucket's arrival time (0: never used, full).
    pub async fn rate_tat(&self, name: &str) -> Result<i64> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT tat FROM rate_limits WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map_or(0, |r| r.0))
    }
}

#[cfg(test)]
mod tests {
    use super::Gcra;

    #[test]
    fn arithmetic_of_a_bucket() {
        let g = Gcra::per_minute(60, 3); // one a second, bursts of three
        assert_eq!(g.interval_us, 1_000_000);
        let now = 10_000_000;
        assert_eq!(g.remaining(0, now), 3, "unused is full");
        assert_eq!(g.until_available(0, now), 0);
        let tat = now + 3 * g.interval_us; // three taken
        assert_eq!(g.remaining(tat, now), 0);
        assert_eq!(g.until_available(tat, now), 1_000_000);
        assert_eq!(g.until_full(tat, now), 3_000_000);
        assert_eq!(g.remaining(tat, now + 1_500_000), 1);
        let overdrawn = now + 5 * g.interval_us;
        assert_eq!(g.remaining(overdrawn, now), -2);
        assert_eq!(g.until_available(overdrawn, now), 3_000_000);
    }
}
