//! PII masking as a service (`/api/v1/privacy/mask`) and the per-tenant pseudonym keys.
//!
//! Pseudonyms are HMAC-SHA256 tokens under a key derived per tenant from one installation
//! secret (`pseudonym.key` in the data directory, 0600, created on first use). It is kept
//! apart from the encryption master keys on purpose: rotating those must not change the
//! pseudonyms already handed out, or joins across time would break.

use std::io::Write;
use std::path::Path;

use aiaas_privacy::{Counts, Finding, Kind, Mode, Policy, PseudonymKey};
use aiaas_types::{Permission, Principal};
use rand::RngCore;

use crate::auth::require;
use crate::{CoreError, Platform, Result};

/// The secret the per-tenant pseudonym keys derive from.
pub const PSEUDONYM_SECRET_FILE: &str = "pseudonym.key";

/// Texts are masked up to this many bytes in all per request.
const MAX_MASK_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct MaskRequest {
    pub texts: Vec<String>,
    pub mode: Mode,
    /// Only these kinds (None: every structured kind).
    pub kinds: Option<Vec<Kind>>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MaskedText {
    pub text: String,
    /// Where each finding was in the input (byte offsets).
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MaskOutput {
    pub results: Vec<MaskedText>,
    /// Findings of each kind over all texts.
    pub counts: Counts,
}

impl Platform {
    /// Find and rewrite personal data in `texts` (any key may: it stores nothing).
    pub async fn mask_texts(&self, principal: &Principal, req: MaskRequest) -> Result<MaskOutput> {
        require(principal, Permission::Infer)?;
        if req.texts.is_empty() {
            return Err(CoreError::InvalidInput(
                "give at least one text to mask".into(),
            ));
        }
        let bytes: usize = req.texts.iter().map(String::len).sum();
        if bytes > MAX_MASK_BYTES {
            return Err(CoreError::PayloadTooLarge(format!(
                "{bytes} bytes of text; at most {MAX_MASK_BYTES} per request"
            )));
        }
        let policy = match req.mode {
            Mode::Pseudonymise => Policy::pseudonymise(self.pseudonym_key(&principal.tenant_id)?),
            mode => Policy::new(mode),
        };
        let kinds = req.kinds;
        tokio::task::spawn_blocking(move || {
            let custom;
            let detector = match &kinds {
                Some(k) => {
                    custom = aiaas_privacy::Detector::new(k);
                    &custom
                }
                None => aiaas_privacy::detector(),
            };
            let mut counts = Counts::new();
            let results = req
                .texts
                .iter()
                .map(|t| {
                    let findings = detector.find(t);
                    let masked = detector.mask(t, &policy);
                    for (k, n) in masked.counts {
                        *counts.entry(k).or_default() += n;
                    }
                    MaskedText {
                        text: masked.text,
                        findings,
                    }
                })
                .collect();
            MaskOutput { results, counts }
        })
        .await
        .map_err(|e| CoreError::Internal(format!("masking task failed: {e}")))
    }

    /// Set the tenant's PII policy for model inputs (`None`: off). Owners set their own
    /// tenant's, admins any.
    pub async fn set_tenant_pii_inputs(
        &self,
        principal: &Principal,
        tenant: &str,
        mode: Option<Mode>,
    ) -> Result<crate::Tenant> {
        require(principal, Permission::ManageKeys)?;
        let t = self.find_tenant(principal, tenant).await?;
        let name = mode.map(mode_name);
        self.inner.meta.set_tenant_pii_inputs(&t.id, name).await?;
        self.inner
            .pii_policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&t.id);
        Ok(crate::Tenant {
            pii_inputs: name.map(str::to_string),
            ..t
        })
    }

    /// Apply the caller's tenant policy to texts about to reach a model: masked in
    /// place when the tenant asks for it (the model never sees the original).
    pub(crate) async fn mask_model_inputs<'a>(
        &self,
        principal: &Principal,
        texts: impl IntoIterator<Item = &'a mut String>,
    ) -> Result<()> {
        let Some(mode) = self.tenant_pii_inputs(&principal.tenant_id).await? else {
            return Ok(());
        };
        let policy = match mode {
            Mode::Pseudonymise => Policy::pseudonymise(self.pseudonym_key(&principal.tenant_id)?),
            other => Policy::new(other),
        };
        let detector = aiaas_privacy::detector();
        for text in texts {
            let masked = detector.mask(text, &policy);
            if !masked.counts.is_empty() {
                *text = masked.text;
            }
        }
        Ok(())
    }

    async fn tenant_pii_inputs(&self, tenant_id: &str) -> Result<Option<Mode>> {
        const TTL: std::time::Duration = std::time::Duration::from_secs(5);
        if let Some((mode, at)) = self
            .inner
            .pii_policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant_id)
        {
            if at.elapsed() < TTL {
                return Ok(*mode);
            }
        }
        let mode = self
            .inner
            .meta
            .tenant(tenant_id)
            .await?
            .and_then(|t| t.pii_inputs)
            .and_then(|m| parse_mode(&m));
        self.inner
            .pii_policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant_id.to_string(), (mode, std::time::Instant::now()));
        Ok(mode)
    }

    /// The tenant's pseudonym key: stable for the life of the installation. The secret
    /// is read (or created) once per process.
    pub(crate) fn pseudonym_key(&self, tenant_id: &str) -> Result<PseudonymKey> {
        let cell = &self.inner.pseudonym_secret;
        let secret = match cell.get() {
            Some(s) => s,
            None => {
                let path = self.inner.config.data_dir.join(PSEUDONYM_SECRET_FILE);
                let s = load_or_create_secret(&path)?;
                cell.get_or_init(|| s)
            }
        };
        Ok(PseudonymKey::derive(secret, tenant_id))
    }
}

pub fn parse_mode(text: &str) -> Option<Mode> {
    match text {
        "mask" => Some(Mode::Mask),
        "label" => Some(Mode::Label),
        "pseudonymise" | "pseudonymize" => Some(Mode::Pseudonymise),
        _ => None,
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Mask => "mask",
        Mode::Label => "label",
        Mode::Pseudonymise => "pseudonymise",
    }
}

/// 32 random bytes (hex) in a 0600 file, created once; created exclusively so two
/// processes starting together agree on one secret.
fn load_or_create_secret(path: &Path) -> Result<Vec<u8>> {
    let read = |path: &Path| -> Result<Vec<u8>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CoreError::Internal(format!("cannot read {}: {e}", path.display())))?;
        hex::decode(text.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| CoreError::Internal(format!("{} is not 64 hex digits", path.display())))
    };
    if path.is_file() {
        return read(path);
    }
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut f) => {
            f.write_all(hex::encode(secret).as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| {
                    CoreError::Internal(format!("cannot write {}: {e}", path.display()))
                })?;
            tracing::info!(path = %path.display(), "created the pseudonym secret (keep it with backups)");
            Ok(secret.to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(CoreError::Internal(format!(
            "cannot create {}: {e}",
            path.display()
        ))),
    }
}
