//! API key secrets, hashing and the permission check.
//!
//! A key is `aiaas_` followed by 64 hex digits (256 random bits). Only its SHA-256 is
//! stored: a fast hash is enough because the secret has full entropy (nothing to brute
//! force), and the lookup compares the hash in constant time.

use aiaas_types::{Permission, Principal, Secret};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{ApiKeyRecord, CoreError};

pub(crate) const KEY_PREFIX: &str = "aiaas_";

pub(crate) fn generate_secret() -> Secret {
    let mut bytes = [0u8; 32];
    // ThreadRng is a CSPRNG (ChaCha) seeded from the operating system.
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(format!("{KEY_PREFIX}{}", hex::encode(bytes)))
}

pub(crate) fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Check a presented secret against the stored record and build the principal.
pub(crate) fn principal_for(
    presented: &str,
    record: &ApiKeyRecord,
    now_ms: i64,
) -> Result<Principal, CoreError> {
    let hash = hash_secret(presented);
    if !bool::from(hash.as_bytes().ct_eq(record.secret_hash.as_bytes())) {
        return Err(invalid_key());
    }
    if record.revoked_at.is_some() {
        return Err(CoreError::Unauthenticated(
            "this API key has been revoked".into(),
        ));
    }
    if record.expires_at.is_some_and(|t| t <= now_ms) {
        return Err(CoreError::Unauthenticated(
            "this API key has expired".into(),
        ));
    }
    let role = record.role;
    Ok(Principal {
        key_id: record.id.clone(),
        tenant_id: record.tenant_id.clone(),
        role,
        allowed_models: record.allowed_models.clone(),
    })
}

pub(crate) fn invalid_key() -> CoreError {
    CoreError::Unauthenticated("invalid API key".into())
}

/// The single permission gate every core operation passes through.
pub fn require(principal: &Principal, permission: Permission) -> Result<(), CoreError> {
    if principal.role.can(permission) {
        Ok(())
    } else {
        Err(CoreError::Forbidden(format!(
            "a key with role {} may not {}",
            principal.role.as_str(),
            describe(permission)
        )))
    }
}

fn describe(p: Permission) -> &'static str {
    match p {
        Permission::ManageTenants => "manage tenants",
        Permission::ManageKeys => "manage API keys",
        Permission::ManageLibrary => "pull, remove, load or unload library models",
        Permission::ReadData => "read datasets or training jobs",
        Permission::WriteData => "upload or delete datasets",
        Permission::Train => "start or cancel training jobs",
        Permission::Deploy => "deploy, alias or delete models",
        Permission::ReadModels => "read models",
        Permission::Infer => "call models",
        Permission::ReadAudit => "read the audit log",
        Permission::ReadMetrics => "read the metrics of the installation",
    }
}

/// Names of tenants, datasets and models: what fits in a URL path segment unescaped.
pub(crate) fn check_name(kind: &str, name: &str) -> Result<(), CoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidInput(format!(
            "{kind} name {name:?} is invalid: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(secret: &Secret) -> ApiKeyRecord {
        ApiKeyRecord {
            id: "k".into(),
            tenant_id: "t".into(),
            name: "n".into(),
            role: aiaas_types::Role::Developer,
            secret_hash: hash_secret(secret.expose()),
            allowed_models: None,
            expires_at: None,
            revoked_at: None,
            created_at: 0,
            limits: aiaas_types::Limits::default(),
            allowed_ips: None,
        }
    }

    #[test]
    fn secrets_are_256_bit_and_unique() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), KEY_PREFIX.len() + 64);
    }

    #[test]
    fn wrong_revoked_and_expired_keys_are_refused() {
        let s = generate_secret();
        let r = record(&s);
        assert_eq!(
            principal_for(s.expose(), &r, 10).unwrap().role,
            aiaas_types::Role::Developer
        );
        assert!(principal_for("aiaas_wrong", &r, 10).is_err());
        let revoked = ApiKeyRecord {
            revoked_at: Some(1),
            ..r.clone()
        };
        assert!(principal_for(s.expose(), &revoked, 10).is_err());
        let expired = ApiKeyRecord {
            expires_at: Some(5),
            ..r
        };
        assert!(principal_for(s.expose(), &expired, 10).is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("model", "news-classifier_v2.1").is_ok());
        for bad in ["", "-x", "a b", "a/b", "ü", &"x".repeat(65)] {
            assert!(check_name("model", bad).is_err(), "{bad}");
        }
    }
}
