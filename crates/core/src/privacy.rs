//! PII masking as a service (`/api/v1/privacy/mask`), the policies that mask what goes
//! into and comes out of models, and the per-tenant pseudonym keys.
//!
//! Policies: a tenant may ask for its keys' model inputs and/or outputs to be masked; a
//! deployed model (a trained model's deployment, or a library model's serving settings)
//! may carry its own mode, which then applies to every caller and takes precedence over
//! the tenant's. Outputs are masked as they stream ([`aiaas_privacy::StreamMasker`]), so a
//! value split across tokens is still caught.
//!
//! Pseudonyms are HMAC-SHA256 tokens under a key derived per tenant from one installation
//! secret (`pseudonym.key` in the data directory, 0600, created on first use). It is kept
//! apart from the encryption master keys on purpose: rotating those must not change the
//! pseudonyms already handed out, or joins across time would break.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use aiaas_privacy::{Counts, Finding, Kind, Mode, Policy, PseudonymKey};
use aiaas_types::{Permission, Principal};
use rand::RngCore;

use crate::auth::require;
use aiaas_store::Metadata;

use crate::tenants::Accounts;
use crate::{CoreError, Result};

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

#[derive(Debug, Clone)]
pub struct MaskedText {
    pub text: String,
    /// Where each finding was in the input (byte offsets).
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone)]
pub struct MaskOutput {
    pub results: Vec<MaskedText>,
    /// Findings of each kind over all texts.
    pub counts: Counts,
}

/// The privacy service: masking on request, the tenants' input/output policies (cached
/// a few seconds) and the per-tenant pseudonym keys. Owns the pseudonym secret.
#[derive(Clone)]
pub struct Privacy {
    inner: Arc<PrivacyState>,
}

struct PrivacyState {
    meta: Metadata,
    accounts: Accounts,
    /// Where the pseudonym secret lives.
    data_dir: PathBuf,
    pseudonym_secret: OnceLock<Vec<u8>>,
    /// Tenants' PII policies for model inputs and outputs, cached for a few seconds.
    pii_policies: Mutex<HashMap<String, (ModelPrivacy, Instant)>>,
}

impl Privacy {
    pub(crate) fn new(meta: Metadata, accounts: Accounts, data_dir: PathBuf) -> Privacy {
        Privacy {
            inner: Arc::new(PrivacyState {
                meta,
                accounts,
                data_dir,
                pseudonym_secret: OnceLock::new(),
                pii_policies: Mutex::new(HashMap::new()),
            }),
        }
    }

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

    /// Change the tenant's PII policies for model inputs and outputs (fields left `None`
    /// keep their value). Owners set their own tenant's, admins any.
    pub async fn set_tenant_privacy(
        &self,
        principal: &Principal,
        tenant: &str,
        update: PrivacyUpdate,
    ) -> Result<crate::Tenant> {
        require(principal, Permission::ManageKeys)?;
        let t = self.inner.accounts.find_tenant(principal, tenant).await?;
        if update.inputs.is_none() && update.outputs.is_none() {
            return Err(CoreError::InvalidInput(
                "give \"inputs\" and/or \"outputs\": mask, label, pseudonymise or null".into(),
            ));
        }
        let keep = |current: Option<Mode>, change: Option<Option<Mode>>| change.unwrap_or(current);
        let inputs = keep(t.pii_inputs, update.inputs);
        let outputs = keep(t.pii_outputs, update.outputs);
        self.inner
            .meta
            .set_tenant_privacy(&t.id, inputs, outputs)
            .await?;
        self.inner
            .pii_policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&t.id);
        Ok(crate::Tenant {
            pii_inputs: inputs,
            pii_outputs: outputs,
            ..t
        })
    }

    /// Apply the input policy to texts about to reach a model: masked in place when the
    /// model's own policy (`model_mode`) or else the caller's tenant asks for it (the
    /// model never sees the original).
    pub(crate) async fn mask_model_inputs<'a>(
        &self,
        principal: &Principal,
        model_mode: Option<Mode>,
        texts: impl IntoIterator<Item = &'a mut String>,
    ) -> Result<()> {
        let mode = match model_mode {
            Some(m) => m,
            None => match self.tenant_privacy(&principal.tenant_id).await?.inputs {
                Some(m) => m,
                None => return Ok(()),
            },
        };
        let policy = self.policy_for(principal, mode)?;
        let detector = aiaas_privacy::detector();
        for text in texts {
            let masked = detector.mask(text, &policy);
            if !masked.counts.is_empty() {
                *text = masked.text;
            }
        }
        Ok(())
    }

    /// The policy for what a model returns to the caller: the model's own (`model_mode`),
    /// else the caller's tenant's; `None` when neither asks for masking.
    pub(crate) async fn output_policy(
        &self,
        principal: &Principal,
        model_mode: Option<Mode>,
    ) -> Result<Option<Policy>> {
        let mode = match model_mode {
            Some(m) => Some(m),
            None => self.tenant_privacy(&principal.tenant_id).await?.outputs,
        };
        mode.map(|m| self.policy_for(principal, m)).transpose()
    }

    fn policy_for(&self, principal: &Principal, mode: Mode) -> Result<Policy> {
        Ok(match mode {
            Mode::Pseudonymise => Policy::pseudonymise(self.pseudonym_key(&principal.tenant_id)?),
            other => Policy::new(other),
        })
    }

    async fn tenant_privacy(&self, tenant_id: &str) -> Result<ModelPrivacy> {
        const TTL: std::time::Duration = std::time::Duration::from_secs(5);
        if let Some((policy, at)) = self
            .inner
            .pii_policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant_id)
        {
            if at.elapsed() < TTL {
                return Ok(*policy);
            }
        }
        let tenant = self.inner.meta.tenant(tenant_id).await?;
        let policy = ModelPrivacy {
            inputs: tenant.as_ref().and_then(|t| t.pii_inputs),
            outputs: tenant.as_ref().and_then(|t| t.pii_outputs),
        };
        self.inner
            .pii_policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant_id.to_string(), (policy, Instant::now()));
        Ok(policy)
    }

    /// The tenant's pseudonym key: stable for the life of the installation. The secret
    /// is read (or created) once per process.
    pub(crate) fn pseudonym_key(&self, tenant_id: &str) -> Result<PseudonymKey> {
        let cell = &self.inner.pseudonym_secret;
        let secret = match cell.get() {
            Some(s) => s,
            None => {
                let path = self.inner.data_dir.join(PSEUDONYM_SECRET_FILE);
                let s = load_or_create_secret(&path)?;
                cell.get_or_init(|| s)
            }
        };
        Ok(PseudonymKey::derive(secret, tenant_id))
    }
}

/// Masking modes for what goes into a model and what comes out (`None`: no masking).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelPrivacy {
    pub inputs: Option<Mode>,
    pub outputs: Option<Mode>,
}

/// A change to a tenant's policies: `None` keeps a field, `Some(None)` turns it off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrivacyUpdate {
    pub inputs: Option<Option<Mode>>,
    pub outputs: Option<Option<Mode>>,
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
