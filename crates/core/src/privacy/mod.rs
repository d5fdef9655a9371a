//! PII masking as a service (`/api/v1/privacy/mask`), the policies that mask what goes
//! into and comes out of models, and the per-tenant pseudonym keys.
//!
//! Policies: a tenant may ask for its keys' model inputs and/or outputs to be masked; a
//! deployed model (a trained model's deployment, or a library model's serving settings)
//! may carry its own mode, which then applies to every caller and takes precedence over
//! the tenant's. Either names its detectors (the rules, the NER model, or both) for inputs
//! and outputs alike. Outputs are masked as they stream (replies.rs), so a value split
//! across tokens is still caught.
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

use aiaas_store::Metadata;

use crate::auth::require;
use crate::library::Library;
use crate::tenants::Accounts;
use crate::{CoreError, Result};

mod replies;

pub(crate) use replies::{join_segments, mask_lines, mask_segments, mask_transcript};
pub use replies::{OutputMasking, ReplyMasker};

/// The secret the per-tenant pseudonym keys derive from.
pub const PSEUDONYM_SECRET_FILE: &str = "pseudonym.key";

/// Texts are masked up to this many bytes in all per request.
const MAX_MASK_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct MaskRequest {
    pub texts: Vec<String>,
    pub mode: Mode,
    /// Only these kinds (None: every kind the detectors find).
    pub kinds: Option<Vec<Kind>>,
    /// Who finds the personal data (empty: the rules).
    pub detectors: Vec<Detection>,
}

/// What finds personal data: the exact rules (e-mail, phones, ids, cards, IPs), and/or
/// the installation's NER model (names, addresses, URLs, id and account numbers; it costs
/// milliseconds per text, so it is asked for). Where both find something the rules win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detection {
    Rules,
    Ner,
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

/// What the privacy service is built from.
pub(crate) struct PrivacyWiring {
    pub(crate) meta: Metadata,
    pub(crate) accounts: Accounts,
    pub(crate) data_dir: PathBuf,
    /// Runs the NER model for the `ner` detector.
    pub(crate) library: Library,
    /// The library model the `ner` detector uses.
    pub(crate) ner_model: String,
}

struct PrivacyState {
    meta: Metadata,
    accounts: Accounts,
    library: Library,
    ner_model: String,
    /// Where the pseudonym secret lives.
    data_dir: PathBuf,
    pseudonym_secret: OnceLock<Vec<u8>>,
    /// Tenants' PII policies for model inputs and outputs, cached for a few seconds.
    pii_policies: Mutex<HashMap<String, (ModelPrivacy, Instant)>>,
}

impl Privacy {
    pub(crate) fn new(w: PrivacyWiring) -> Privacy {
        Privacy {
            inner: Arc::new(PrivacyState {
                meta: w.meta,
                accounts: w.accounts,
                library: w.library,
                ner_model: w.ner_model,
                data_dir: w.data_dir,
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
        let found_by_model = if req.detectors.contains(&Detection::Ner) {
            self.model_findings(&req.texts, req.kinds.as_deref())
                .await?
        } else {
            vec![Vec::new(); req.texts.len()]
        };
        let rules = req.detectors.is_empty() || req.detectors.contains(&Detection::Rules);
        let kinds = req.kinds;
        tokio::task::spawn_blocking(move || {
            let detector = rule_detector(rules, kinds.as_deref());
            let mut counts = Counts::new();
            let results = req
                .texts
                .iter()
                .zip(&found_by_model)
                .map(|(t, extra)| {
                    let findings = detector.find_with(t, extra);
                    let masked = detector.mask_with(t, extra, &policy);
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

    /// What the NER model finds in `texts` as findings (byte offsets; pieces of one
    /// name or address joined), of `kinds` when given.
    pub(crate) async fn model_findings(
        &self,
        texts: &[String],
        kinds: Option<&[Kind]>,
    ) -> Result<Vec<Vec<Finding>>> {
        let entities = self
            .inner
            .library
            .entities_for_masking(&self.inner.ner_model, texts.to_vec())
            .await?;
        Ok(texts
            .iter()
            .zip(entities)
            .map(|(text, found)| {
                // Character offsets to byte offsets.
                let bytes: Vec<usize> = text
                    .char_indices()
                    .map(|(b, _)| b)
                    .chain(std::iter::once(text.len()))
                    .collect();
                let findings = found
                    .into_iter()
                    .filter_map(|e| {
                        let kind = Kind::of_entity(&e.label)?;
                        if kinds.is_some_and(|k| !k.contains(&kind)) {
                            return None;
                        }
                        Some(Finding {
                            kind,
                            start: *bytes.get(e.start)?,
                            end: *bytes.get(e.end)?,
                        })
                    })
                    .collect();
                aiaas_privacy::join_entities(text, findings)
            })
            .collect())
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
        if update.inputs.is_none() && update.outputs.is_none() && update.detectors.is_none() {
            return Err(CoreError::InvalidInput(
                "give \"inputs\" and/or \"outputs\" (mask, label, pseudonymise or null), or \
                 \"detectors\" ([\"rules\"], [\"ner\"] or both)"
                    .into(),
            ));
        }
        let keep = |current: Option<Mode>, change: Option<Option<Mode>>| change.unwrap_or(current);
        let inputs = keep(t.pii_inputs, update.inputs);
        let outputs = keep(t.pii_outputs, update.outputs);
        let detectors: Vec<String> = match update.detectors {
            Some(d) => d.iter().map(|d| d.as_str().to_string()).collect(),
            None => t.pii_detectors.clone(),
        };
        self.inner
            .meta
            .set_tenant_privacy(&t.id, inputs, outputs, &detectors)
            .await?;
        self.inner
            .pii_policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&t.id);
        Ok(crate::Tenant {
            pii_inputs: inputs,
            pii_outputs: outputs,
            pii_detectors: detectors,
            ..t
        })
    }

    /// Apply the input policy to texts about to reach a model: masked in place when the
    /// model's own policy (`model_mode`) or else the caller's tenant asks for it (the
    /// model never sees the original), found by the model's detectors when it names
    /// them, else the tenant's. Returns the mode applied, if any.
    pub(crate) async fn mask_model_inputs<'a>(
        &self,
        principal: &Principal,
        (model_mode, model_detectors): (Option<Mode>, Option<&[Detection]>),
        texts: impl IntoIterator<Item = &'a mut String>,
    ) -> Result<Option<Mode>> {
        let tenant = self.tenant_privacy(&principal.tenant_id).await?;
        let mode = match model_mode.or(tenant.inputs) {
            Some(m) => m,
            None => return Ok(None),
        };
        let policy = self.policy_for(principal, mode)?;
        let mut texts: Vec<&mut String> = texts.into_iter().collect();
        let detectors = model_detectors.unwrap_or(&tenant.detectors);
        // With the `ner` detector, names and addresses too.
        let found_by_model = if detectors.contains(&Detection::Ner) {
            let plain: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
            self.model_findings(&plain, None).await?
        } else {
            Vec::new()
        };
        let rules = detectors.is_empty() || detectors.contains(&Detection::Rules);
        let detector = rule_detector(rules, None);
        for (i, text) in texts.iter_mut().enumerate() {
            let extra = found_by_model.get(i).map(Vec::as_slice).unwrap_or(&[]);
            let masked = detector.mask_with(text, extra, &policy);
            if !masked.counts.is_empty() {
                **text = masked.text;
            }
        }
        Ok(Some(mode))
    }

    /// How what a model returns to the caller is masked: by the model's own policy
    /// (`model_mode`), else the caller's tenant's, with the model's detectors when it
    /// names them, else the tenant's; `None` when neither asks for masking. With the
    /// `ner` detector its model must be installed (409 now rather than mid-reply).
    pub(crate) async fn output_masking(
        &self,
        principal: &Principal,
        (model_mode, model_detectors): (Option<Mode>, Option<&[Detection]>),
    ) -> Result<Option<OutputMasking>> {
        let tenant = self.tenant_privacy(&principal.tenant_id).await?;
        let Some(mode) = model_mode.or(tenant.outputs) else {
            return Ok(None);
        };
        let policy = self.policy_for(principal, mode)?;
        let detectors = model_detectors.unwrap_or(&tenant.detectors);
        let rules = detectors.is_empty() || detectors.contains(&Detection::Rules);
        let ner = if detectors.contains(&Detection::Ner) {
            self.inner
                .library
                .entities_for_masking(&self.inner.ner_model, Vec::new())
                .await?;
            Some(self.clone())
        } else {
            None
        };
        Ok(Some(OutputMasking::new(policy, rules, ner)))
    }

    /// How the library model `name`'s outputs to this caller are masked (its serving
    /// settings, else the caller's tenant's policy): for the tasks whose answers are
    /// text (OCR lines, transcripts).
    pub async fn library_output_masking(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<Option<OutputMasking>> {
        let record = self
            .inner
            .library
            .visible_library_model(principal, name)
            .await?;
        let settings = crate::library::ServingSettings::of(&record);
        self.output_masking(
            principal,
            (settings.pii_outputs, settings.pii_detectors.as_deref()),
        )
        .await
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
                return Ok(policy.clone());
            }
        }
        let tenant = self.inner.meta.tenant(tenant_id).await?;
        let policy = ModelPrivacy {
            inputs: tenant.as_ref().and_then(|t| t.pii_inputs),
            outputs: tenant.as_ref().and_then(|t| t.pii_outputs),
            detectors: tenant
                .as_ref()
                .map(|t| {
                    t.pii_detectors
                        .iter()
                        .filter_map(|d| Detection::parse(d))
                        .collect()
                })
                .unwrap_or_default(),
        };
        self.inner
            .pii_policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant_id.to_string(), (policy.clone(), Instant::now()));
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

/// The rules' detector: of `kinds` (every rule kind when `None`), or none at all when the
/// rules are not asked for.
pub(crate) fn rule_detector(rules: bool, kinds: Option<&[Kind]>) -> aiaas_privacy::Detector {
    match (rules, kinds) {
        (false, _) => aiaas_privacy::Detector::new(&[]),
        (true, Some(k)) => aiaas_privacy::Detector::new(k),
        (true, None) => aiaas_privacy::Detector::default(),
    }
}

/// Masking modes for what goes into a model and what comes out (`None`: no masking), and
/// who finds the personal data in both (empty: the rules).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelPrivacy {
    pub inputs: Option<Mode>,
    pub outputs: Option<Mode>,
    pub detectors: Vec<Detection>,
}

/// A change to a tenant's policies: `None` keeps a field, `Some(None)` turns it off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivacyUpdate {
    pub inputs: Option<Option<Mode>>,
    pub outputs: Option<Option<Mode>>,
    /// Who finds the personal data in inputs and outputs (`Some(vec![])`: back to the
    /// rules).
    pub detectors: Option<Vec<Detection>>,
}

impl Detection {
    pub fn as_str(self) -> &'static str {
        match self {
            Detection::Rules => "rules",
            Detection::Ner => "ner",
        }
    }

    pub fn parse(text: &str) -> Option<Detection> {
        match text.trim() {
            "rules" => Some(Detection::Rules),
            "ner" => Some(Detection::Ner),
            _ => None,
        }
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
