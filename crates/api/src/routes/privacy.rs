//! `/api/v1/privacy/mask`: the PII masking on its own, for callers that only want that.

use aiaas_core::{CoreError, Detection, MaskRequest};
use aiaas_privacy::{Kind, Mode};
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth};
use crate::{wire, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(mask))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MaskBody {
    /// One text (the answer has `text`) ...
    text: Option<String>,
    /// ... or several (the answer has `results`).
    texts: Option<Vec<String>>,
    /// `mask` (keep the shape, default), `label` or `pseudonymise`.
    mode: Option<String>,
    /// Only these kinds: email, phone, china_id, bank_card, ipv4, ipv6 (the rules);
    /// person, address, url, id_number, bank_account (the `ner` detector).
    kinds: Option<Vec<String>>,
    /// Who finds the data: `["rules"]` (the default), `["ner"]`, or both: the exact
    /// rules and the installation's NER model (`pii-ner`; milliseconds per text); where
    /// both find something the rules win.
    #[schema(value_type = Option<Vec<String>>)]
    detectors: Option<Vec<Detection>>,
}

#[utoipa::path(
    post,
    path = "/api/v1/privacy/mask",
    tag = "privacy",
    summary = "Find and mask personal data (mode mask, label or pseudonymise)",
    request_body = MaskBody,
    responses((status = 200, description = "masked texts, findings and counts per kind", body = Object), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Infer.as_str()))),
)]
async fn mask(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<MaskBody>,
) -> ApiResult<Json<Value>> {
    let single = body.text.is_some();
    let texts = match (body.text, body.texts) {
        (Some(t), None) => vec![t],
        (None, Some(ts)) => ts,
        _ => {
            return Err(CoreError::InvalidInput(
                "give either \"text\" (a string) or \"texts\" (a list)".into(),
            )
            .into())
        }
    };
    let requested = body.mode.as_deref().unwrap_or("mask");
    let mode = Mode::parse(requested).ok_or_else(|| {
        CoreError::InvalidInput(format!(
            "mode must be mask, label or pseudonymise, not {requested:?}"
        ))
    })?;
    let detectors = body.detectors.unwrap_or_else(|| vec![Detection::Rules]);
    let ner = detectors.contains(&Detection::Ner);
    let kinds = body
        .kinds
        .map(|ks| {
            ks.iter()
                .map(|k| match Kind::parse(k) {
                    Some(kind) if ner || Kind::STRUCTURED.contains(&kind) => Ok(kind),
                    Some(kind) => Err(CoreError::InvalidInput(format!(
                        "kind {k:?} is found by the ner detector: add \"detectors\": [\"rules\", \"ner\"]",
                        k = kind.name()
                    ))),
                    None => Err(CoreError::InvalidInput(format!(
                        "unknown kind {k:?}: use email, phone, china_id, bank_card, ipv4, ipv6, \
                         or with the ner detector person, address, url, id_number, bank_account"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let request = MaskRequest {
        texts,
        mode,
        kinds,
        detectors,
    };
    let out = s.platform.privacy().mask_texts(&p, request).await?;
    if single {
        let first = out.results.into_iter().next();
        Ok(Json(json!({
            "text": first.as_ref().map(|r| r.text.clone()),
            "findings": first.map(|r| r.findings).unwrap_or_default(),
            "counts": out.counts,
        })))
    } else {
        let results = wire::all::<_, wire::Masked>(out.results);
        Ok(Json(json!({"results": results, "counts": out.counts})))
    }
}
