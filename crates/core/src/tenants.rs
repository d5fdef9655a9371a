//! Tenants and API keys (`Accounts`): who a bearer secret is, creation, listing,
//! revocation, the admin key bootstrapped at the first start.

use std::sync::{Arc, Mutex};

use aiaas_store::Metadata;
use aiaas_types::{Permission, Principal, Role, Secret};

use crate::auth::{self, check_name, hash_secret, require};
use crate::limits::Limiter;
use crate::{ApiKeyRecord, CoreError, Result, Tenant};

/// The accounts service: tenants and API keys. Owns the admin principal of this process.
#[derive(Clone)]
pub struct Accounts {
    inner: Arc<AccountsState>,
}

struct AccountsState {
    meta: Metadata,
    /// Told when a tenant's limits change (it caches them).
    limiter: Limiter,
    /// The admin key from the environment, instead of a generated one.
    configured_admin: Option<Secret>,
    admin: Mutex<Option<Principal>>,
}

/// The admin key as the first start left it.
pub(crate) struct AdminBootstrap {
    /// A newly generated admin key: print it once, it is not stored.
    pub(crate) generated: Option<Secret>,
    /// The admin key from the environment was registered.
    pub(crate) from_env: bool,
}

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Tenant id or name; defaults to the caller's tenant. Only admins may name another.
    pub tenant: Option<String>,
    pub name: String,
    pub role: Role,
    /// Model names this key may call; absent means all of its tenant's models.
    pub allowed_models: Option<Vec<String>>,
    /// Lifetime in seconds from now; absent means no expiry.
    pub expires_in_secs: Option<u64>,
    /// Rate limits and token quotas of this key (absent: none beyond the tenant's).
    pub limits: Option<aiaas_types::Limits>,
    /// CIDR ranges the key may be used from (absent: anywhere).
    pub allowed_ips: Option<Vec<String>>,
}

/// New limits and IP allow-list of an existing key (both replace the old ones).
#[derive(Debug, Clone, Default)]
pub struct KeyLimits {
    pub limits: aiaas_types::Limits,
    pub allowed_ips: Option<Vec<String>>,
    /// The models the key may call: left out keeps the list, null allows every model.
    pub allowed_models: Option<Option<Vec<String>>>,
}

/// A created key with its secret, which is shown this once and never stored.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: ApiKeyRecord,
    pub secret: Secret,
}

/// Who a key is: `GET /api/v1/me`.
#[derive(Debug, Clone)]
pub struct Identity {
    pub key: ApiKeyRecord,
    /// The key's own tenant: name, limits and PII policies.
    pub tenant: Tenant,
    /// What the key's role allows (`manage_keys`, `train`, `infer`, ...).
    pub permissions: Vec<&'static str>,
}

impl Accounts {
    pub(crate) fn new(meta: Metadata, limiter: Limiter, admin_key: Option<Secret>) -> Accounts {
        Accounts {
            inner: Arc::new(AccountsState {
                meta,
                limiter,
                configured_admin: admin_key,
                admin: Mutex::new(None),
            }),
        }
    }

    /// Resolve a bearer secret to its principal (no rate limiting: see
    /// `Limiter::admit_request` for requests).
    pub async fn authenticate(&self, secret: &str) -> Result<Principal> {
        Ok(self.authenticate_record(secret).await?.0)
    }

    /// The principal of a bearer secret and its key's record (limits, allow-lists).
    pub async fn authenticate_record(&self, secret: &str) -> Result<(Principal, ApiKeyRecord)> {
        if !secret.starts_with(auth::KEY_PREFIX) {
            return Err(auth::invalid_key());
        }
        let record = self
            .inner
            .meta
            .key_by_hash(&hash_secret(secret))
            .await?
            .ok_or_else(auth::invalid_key)?;
        let principal = auth::principal_for(secret, &record, aiaas_types::now_ms())?;
        Ok((principal, record))
    }

    /// The admin principal of this installation (for work the platform does itself).
    pub(crate) fn admin(&self) -> Result<Principal> {
        self.inner
            .admin
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| CoreError::Internal("no admin principal".into()))
    }

    pub async fn create_tenant(&self, principal: &Principal, name: &str) -> Result<Tenant> {
        require(principal, Permission::ManageTenants)?;
        check_name("tenant", name)?;
        Ok(self.inner.meta.create_tenant(name).await?)
    }

    pub async fn list_tenants(&self, principal: &Principal) -> Result<Vec<Tenant>> {
        require(principal, Permission::ManageTenants)?;
        Ok(self.inner.meta.tenants().await?)
    }

    pub async fn create_key(&self, principal: &Principal, new: NewKey) -> Result<CreatedKey> {
        require(principal, Permission::ManageKeys)?;
        if new.name.trim().is_empty() || new.name.len() > 100 {
            return Err(CoreError::InvalidInput(
                "key name must be 1-100 characters".into(),
            ));
        }
        if new.role.rank() > principal.role.rank() {
            return Err(CoreError::Forbidden(format!(
                "a key with role {} cannot create a key with role {}",
                principal.role.as_str(),
                new.role.as_str()
            )));
        }
        // A key limited to some models can only hand out a subset of them.
        if let Some(mine) = &principal.allowed_models {
            let within = new
                .allowed_models
                .as_ref()
                .is_some_and(|theirs| theirs.iter().all(|m| mine.contains(m)));
            if !within {
                return Err(CoreError::Forbidden(
                    "a key limited to some models can only create keys limited to a subset of them"
                        .into(),
                ));
            }
        }
        let tenant_id = match &new.tenant {
            None => principal.tenant_id.clone(),
            Some(t) => self.resolve_tenant(principal, t).await?.id,
        };
        if let Some(models) = &new.allowed_models {
            for m in models {
                check_name("model", m)?;
            }
        }
        let expires_at = expiry(new.expires_in_secs)?;
        let limits = new.limits.unwrap_or_default();
        limits.validate().map_err(CoreError::InvalidInput)?;
        let allowed_ips = new
            .allowed_ips
            .as_deref()
            .map(crate::limits::parse_allowed_ips)
            .transpose()?;
        let secret = auth::generate_secret();
        let key = ApiKeyRecord {
            id: aiaas_types::new_id(),
            tenant_id,
            name: new.name.trim().to_string(),
            role: new.role,
            secret_hash: hash_secret(secret.expose()),
            allowed_models: new.allowed_models,
            expires_at,
            revoked_at: None,
            created_at: aiaas_types::now_ms(),
            limits,
            allowed_ips,
        };
        self.inner.meta.insert_key(&key).await?;
        tracing::info!(key = %key.id, role = key.role.as_str(), by = %principal.key_id, "api key created");
        Ok(CreatedKey { key, secret })
    }

    /// Replace a key's limits and IP allow-list (owners: keys of their tenant).
    pub async fn set_key_limits(
        &self,
        principal: &Principal,
        key_id: &str,
        new: KeyLimits,
    ) -> Result<ApiKeyRecord> {
        require(principal, Permission::ManageKeys)?;
        new.limits.validate().map_err(CoreError::InvalidInput)?;
        let allowed_ips = new
            .allowed_ips
            .as_deref()
            .map(crate::limits::parse_allowed_ips)
            .transpose()?;
        let not_found = || CoreError::NotFound(format!("no API key with id {key_id}"));
        let key = self.inner.meta.key(key_id).await?.ok_or_else(not_found)?;
        if !principal.sees_tenant(&key.tenant_id) {
            return Err(not_found());
        }
        if key.role.rank() > principal.role.rank() {
            return Err(CoreError::Forbidden(
                "a key cannot change the limits of a key with a higher role".into(),
            ));
        }
        if let Some(models) = &new.allowed_models {
            for m in models.iter().flatten() {
                check_name("model", m)?;
            }
            // A key limited to some models can only grant a subset of them.
            if let Some(mine) = &principal.allowed_models {
                let within = models
                    .as_ref()
                    .is_some_and(|theirs| theirs.iter().all(|m| mine.contains(m)));
                if !within {
                    return Err(CoreError::Forbidden(
                        "a key limited to some models can only allow a subset of them".into(),
                    ));
                }
            }
        }
        self.inner
            .meta
            .set_key_limits(&key.id, &new.limits, allowed_ips.as_deref())
            .await?;
        if let Some(models) = &new.allowed_models {
            self.inner
                .meta
                .set_key_allowed_models(&key.id, models.as_deref())
                .await?;
        }
        self.inner.meta.key(key_id).await?.ok_or_else(not_found)
    }

    /// Replace a tenant's limits (admins).
    pub async fn set_tenant_limits(
        &self,
        principal: &Principal,
        tenant: &str,
        limits: aiaas_types::Limits,
    ) -> Result<Tenant> {
        require(principal, Permission::ManageTenants)?;
        limits.validate().map_err(CoreError::InvalidInput)?;
        let t = self.resolve_tenant(principal, tenant).await?;
        self.inner.meta.set_tenant_limits(&t.id, &limits).await?;
        self.inner.limiter.forget_tenant_limits(&t.id);
        Ok(Tenant { limits, ..t })
    }

    /// The caller's own key, tenant and permissions (any valid key may ask: the console
    /// shows what a user can do from it).
    pub async fn whoami(&self, principal: &Principal) -> Result<Identity> {
        // Every role has it; declared so the route's permission is checked like any other.
        require(principal, Permission::ReadModels)?;
        let missing = || CoreError::Unauthenticated("this API key no longer exists".into());
        let key = self
            .inner
            .meta
            .key(&principal.key_id)
            .await?
            .ok_or_else(missing)?;
        let tenant = self
            .inner
            .meta
            .tenant(&principal.tenant_id)
            .await?
            .ok_or_else(missing)?;
        let permissions = Permission::ALL
            .into_iter()
            .filter(|p| principal.role.can(*p))
            .map(Permission::as_str)
            .collect();
        Ok(Identity {
            key,
            tenant,
            permissions,
        })
    }

    pub async fn list_keys(&self, principal: &Principal) -> Result<Vec<ApiKeyRecord>> {
        require(principal, Permission::ManageKeys)?;
        let scope = (!principal.is_admin()).then_some(principal.tenant_id.as_str());
        Ok(self.inner.meta.keys(scope).await?)
    }

    pub async fn revoke_key(&self, principal: &Principal, key_id: &str) -> Result<ApiKeyRecord> {
        require(principal, Permission::ManageKeys)?;
        let not_found = || CoreError::NotFound(format!("no API key with id {key_id}"));
        let key = self.inner.meta.key(key_id).await?.ok_or_else(not_found)?;
        if !principal.sees_tenant(&key.tenant_id) {
            return Err(not_found());
        }
        if key.role.rank() > principal.role.rank() {
            return Err(CoreError::Forbidden(
                "cannot revoke a key more powerful than your own".into(),
            ));
        }
        self.inner
            .meta
            .revoke_key(key_id, aiaas_types::now_ms())
            .await?;
        tracing::info!(key = %key_id, by = %principal.key_id, "api key revoked");
        self.inner.meta.key(key_id).await?.ok_or_else(not_found)
    }

    /// A tenant by id or name, as the caller may see it.
    pub(crate) async fn find_tenant(
        &self,
        principal: &Principal,
        id_or_name: &str,
    ) -> Result<Tenant> {
        self.resolve_tenant(principal, id_or_name).await
    }

    async fn resolve_tenant(&self, principal: &Principal, id_or_name: &str) -> Result<Tenant> {
        let meta = &self.inner.meta;
        let tenant = match meta.tenant(id_or_name).await? {
            Some(t) => Some(t),
            None => meta.tenant_by_name(id_or_name).await?,
        };
        match tenant {
            Some(t) if principal.sees_tenant(&t.id) => Ok(t),
            _ => Err(CoreError::NotFound(format!("no tenant {id_or_name:?}"))),
        }
    }

    /// Make sure the installation has an admin key: the one from the environment, an
    /// existing one, or a new one (returned to be printed once).
    pub(crate) async fn bootstrap_admin(&self) -> Result<AdminBootstrap> {
        let meta = &self.inner.meta;
        let tenant = match meta.tenant_by_name("default").await? {
            Some(t) => t,
            None => meta.create_tenant("default").await?,
        };
        let mut report = AdminBootstrap {
            generated: None,
            from_env: false,
        };
        let secret = match &self.inner.configured_admin {
            Some(s) => {
                if !s.expose().starts_with(auth::KEY_PREFIX) || s.expose().len() < 32 {
                    return Err(CoreError::InvalidInput(format!(
                        "AIAAS_ADMIN_KEY must start with {:?} and be at least 32 characters long",
                        auth::KEY_PREFIX
                    )));
                }
                if let Some(existing) = meta.key_by_hash(&hash_secret(s.expose())).await? {
                    self.remember_admin(&existing);
                    return Ok(report);
                }
                report.from_env = true;
                s.clone()
            }
            None => {
                let admins: Vec<ApiKeyRecord> = meta
                    .keys(Some(&tenant.id))
                    .await?
                    .into_iter()
                    .filter(|k| k.role == Role::Admin && k.revoked_at.is_none())
                    .collect();
                if let Some(existing) = admins.first() {
                    self.remember_admin(existing);
                    return Ok(report);
                }
                let s = auth::generate_secret();
                report.generated = Some(s.clone());
                s
            }
        };
        let record = ApiKeyRecord {
            id: aiaas_types::new_id(),
            tenant_id: tenant.id,
            name: "admin".into(),
            role: Role::Admin,
            secret_hash: hash_secret(secret.expose()),
            allowed_models: None,
            expires_at: None,
            revoked_at: None,
            created_at: aiaas_types::now_ms(),
            limits: aiaas_types::Limits::default(),
            allowed_ips: None,
        };
        meta.insert_key(&record).await?;
        self.remember_admin(&record);
        Ok(report)
    }

    fn remember_admin(&self, record: &ApiKeyRecord) {
        *self.inner.admin.lock().unwrap_or_else(|e| e.into_inner()) = Some(Principal {
            key_id: record.id.clone(),
            tenant_id: record.tenant_id.clone(),
            role: Role::Admin,
            allowed_models: None,
        });
    }
}

/// When a key asked to live `expires_in_secs` expires (ms since the epoch): positive, at
/// most ten years.
fn expiry(expires_in_secs: Option<u64>) -> Result<Option<i64>> {
    const TEN_YEARS: u64 = 10 * 366 * 24 * 3600;
    if expires_in_secs.is_some_and(|s| s > TEN_YEARS) {
        return Err(CoreError::InvalidInput(format!(
            "expires_in_secs must be at most {TEN_YEARS} (ten years); leave it out for a key that does not expire"
        )));
    }
    Ok(match expires_in_secs {
        None => None,
        Some(0) => {
            return Err(CoreError::InvalidInput(
                "expires_in_secs must be positive".into(),
            ))
        }
        Some(s) => Some(
            aiaas_types::now_ms().saturating_add(
                i64::try_from(s)
                    .unwrap_or(i64::MAX / 2000)
                    .saturating_mul(1000),
            ),
        ),
    })
}
