//! The OpenAPI 3.1 document of the API (`/openapi.json`) and a small self-contained
//! page to read and try it (`/docs`; no CDN, works offline).

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(|| async { Json(document()) }))
        .route(
            "/docs",
            get(|| async {
                ([(header::CACHE_CONTROL, "no-cache")], Html(DOCS_PAGE)).into_response()
            }),
        )
}

/// One documented operation.
struct Op {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    /// Whether it needs `Authorization: Bearer`.
    auth: bool,
    body: Option<Value>,
}

const fn op(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
) -> Op {
    Op {
        method,
        path,
        tag,
        summary,
        auth: true,
        body: None,
    }
}

fn operations() -> Vec<Op> {
    let open = |o: Op| Op { auth: false, ..o };
    let with = |o: Op, body: Value| Op {
        body: Some(body),
        ..o
    };
    vec![
        open(op("get", "/healthz", "operations", "Liveness")),
        open(op(
            "get",
            "/readyz",
            "operations",
            "Readiness (database reachable, not draining)",
        )),
        op(
            "get",
            "/metrics",
            "operations",
            "Prometheus metrics (an admin or metrics key; --metrics-listen serves them without one)",
        ),
        with(
            op(
                "post",
                "/api/v1/tenants",
                "tenants",
                "Create a tenant (admin)",
            ),
            json!({"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}),
        ),
        op("get", "/api/v1/tenants", "tenants", "List tenants (admin)"),
        with(
            op(
                "post",
                "/api/v1/keys",
                "keys",
                "Create an API key; the secret is returned once",
            ),
            json!({"type": "object", "required": ["name", "role"], "properties": {
                "name": {"type": "string"},
                "role": {"enum": ["admin", "owner", "developer", "inference", "metrics"]},
                "tenant": {"type": "string", "description": "tenant id or name (admins only)"},
                "allowed_models": {"type": "array", "items": {"type": "string"}},
                "expires_in_secs": {"type": "integer", "minimum": 1}}}),
        ),
        op("get", "/api/v1/keys", "keys", "List API keys (no secrets)"),
        op("delete", "/api/v1/keys/{id}", "keys", "Revoke an API key"),
        with(
            op(
                "put",
                "/api/v1/keys/{id}",
                "keys",
                "Set a key's limits, IP allow-list and (if given) model allow-list",
            ),
            json!({"type": "object", "properties": {
                "limits": {"$ref": "#/components/schemas/Limits"},
                "allowed_ips": {"type": "array", "items": {"type": "string"}},
                "allowed_models": {"type": ["array", "null"], "items": {"type": "string"}}}}),
        ),
        with(
            op(
                "put",
                "/api/v1/tenants/{id}/privacy",
                "tenants",
                "Set a tenant's PII policies for model inputs and outputs (owner, admin); a field left out keeps its value, null turns it off",
            ),
            json!({"type": "object", "properties": {"inputs": pii_mode(), "outputs": pii_mode()}}),
        ),
        with(
            op(
                "put",
                "/api/v1/tenants/{id}/limits",
                "tenants",
                "Set a tenant's limits (admin)",
            ),
            json!({"$ref": "#/components/schemas/Limits"}),
        ),
        Op {
            body: Some(json!({"type": "string", "format": "binary",
                "description": "CSV or JSONL, streamed; or multipart/form-data with a `file` part. Query: name, format (csv|jsonl), text_column, label_column"})),
            ..op("post", "/api/v1/datasets", "datasets", "Upload a dataset")
        },
        op("get", "/api/v1/datasets", "datasets", "List datasets"),
        op(
            "get",
            "/api/v1/datasets/{id}",
            "datasets",
            "A dataset with its statistics",
        ),
        op(
            "delete",
            "/api/v1/datasets/{id}",
            "datasets",
            "Delete a dataset not used by jobs",
        ),
        op(
            "get",
            "/api/v1/datasets/{id}/preview",
            "datasets",
            "First rows (query: limit)",
        ),
        with(
            op("post", "/api/v1/jobs", "training", "Start a training job"),
            json!({"type": "object", "required": ["dataset", "model"], "properties": {
                "dataset": {"type": "string"}, "test_dataset": {"type": "string"},
                "model": {"type": "string"}, "deploy": {"type": "boolean"},
                "config": {"type": "object", "description": "architecture (avgpool|textcnn|gru|lstm|tfidf-logreg|auto), embedding {init: word2vec|random, mode, vector_size, window, min_count, negative, epochs, sample}, freeze_embeddings, epochs, batch_size, learning_rate, max_len, validation_split, early_stopping_patience, seed, threads"}}}),
        ),
        op(
            "get",
            "/api/v1/jobs",
            "training",
            "List training jobs, newest first (query: limit)",
        ),
        op(
            "get",
            "/api/v1/jobs/{id}",
            "training",
            "A job with its report",
        ),
        op(
            "get",
            "/api/v1/jobs/{id}/events",
            "training",
            "Job events as server-sent events (Last-Event-ID resumes)",
        ),
        op(
            "post",
            "/api/v1/jobs/{id}/cancel",
            "training",
            "Cancel a job",
        ),
        op("get", "/api/v1/models", "models", "List models"),
        op(
            "get",
            "/api/v1/models/{name}",
            "models",
            "A model: versions, aliases, deployment",
        ),
        op(
            "delete",
            "/api/v1/models/{name}",
            "models",
            "Delete a model and its versions",
        ),
        op(
            "get",
            "/api/v1/models/{name}/versions/{version}",
            "models",
            "One version (number or alias)",
        ),
        with(
            op(
                "post",
                "/api/v1/models/{name}/aliases",
                "models",
                "Point an alias at a version",
            ),
            json!({"type": "object", "required": ["alias", "version"], "properties": {
                "alias": {"type": "string"}, "version": {"type": "integer"}}}),
        ),
        with(
            op(
                "post",
                "/api/v1/models/{name}/deploy",
                "models",
                "Deploy a version (default: latest)",
            ),
            json!({"type": "object", "properties": {"version": {"type": "integer"}, "alias": {"type": "string"},
                "max_batch": {"type": "integer"}, "max_delay_ms": {"type": "integer"}, "queue_capacity": {"type": "integer"},
                "pii_inputs": pii_mode()}}),
        ),
        op(
            "post",
            "/api/v1/models/{name}/undeploy",
            "models",
            "Undeploy",
        ),
        with(
            op(
                "post",
                "/api/v1/models/{name}/predict",
                "inference",
                "Classify texts (name, name:version or name:alias)",
            ),
            json!({"type": "object", "properties": {"texts": {"type": "array", "items": {"type": "string"}}, "text": {"type": "string"}}}),
        ),
        open(op("get", "/v2", "kserve", "Server metadata")),
        open(op("get", "/v2/health/live", "kserve", "Server live")),
        open(op("get", "/v2/health/ready", "kserve", "Server ready")),
        op("get", "/v2/models/{name}", "kserve", "Model metadata"),
        op(
            "get",
            "/v2/models/{name}/versions/{version}",
            "kserve",
            "Model version metadata",
        ),
        op("get", "/v2/models/{name}/ready", "kserve", "Model ready"),
        op(
            "get",
            "/v2/models/{name}/versions/{version}/ready",
            "kserve",
            "Model version ready",
        ),
        with(
            op(
                "post",
                "/v2/models/{name}/infer",
                "kserve",
                "Inference (JSON or binary tensors)",
            ),
            json!({"type": "object", "required": ["inputs"], "properties": {
                "id": {"type": "string"},
                "inputs": {"type": "array", "items": {"type": "object"}},
                "outputs": {"type": "array", "items": {"type": "object"}}}}),
        ),
        op(
            "post",
            "/v2/models/{name}/versions/{version}/infer",
            "kserve",
            "Inference on a version",
        ),
        with(
            op(
                "post",
                "/api/v1/privacy/mask",
                "privacy",
                "Find and mask personal data (mode mask, label or pseudonymise)",
            ),
            json!({"type": "object", "properties": {
                "text": {"type": "string"},
                "texts": {"type": "array", "items": {"type": "string"}},
                "mode": {"type": "string", "enum": ["mask", "label", "pseudonymise"]},
                "kinds": {"type": "array", "items": {"type": "string",
                    "enum": ["email", "phone", "china_id", "bank_card", "ipv4", "ipv6"]}}}}),
        ),
        op(
            "get",
            "/api/v1/audit",
            "audit",
            "Audit entries (filters: tenant, key, action, outcome, since, until, after, limit)",
        ),
        op(
            "get",
            "/api/v1/audit/export",
            "audit",
            "Audit entries as JSON lines",
        ),
        op(
            "get",
            "/api/v1/audit/verify",
            "audit",
            "Verify the audit hash chain (admin)",
        ),
        op(
            "get",
            "/api/v1/library",
            "library",
            "Models in the library (LLMs, encoders)",
        ),
        op(
            "get",
            "/api/v1/library/catalogue",
            "library",
            "The catalogue of models to pull",
        ),
        with(
            op(
                "post",
                "/api/v1/library/pull",
                "library",
                "Pull a model (admin; NDJSON progress unless stream is false)",
            ),
            json!({"type": "object", "required": ["source"], "properties": {
                "source": {"type": "string", "description": "catalogue name, local path, or hf:org/name"},
                "name": {"type": "string"}, "stream": {"type": "boolean"}}}),
        ),
        op(
            "get",
            "/api/v1/library/{name}",
            "library",
            "A library model's details",
        ),
        op(
            "delete",
            "/api/v1/library/{name}",
            "library",
            "Remove a library model (admin)",
        ),
        with(
            op(
                "put",
                "/api/v1/library/{name}/settings",
                "library",
                "Serving settings (admin)",
            ),
            json!({"type": "object", "properties": {
                "slots": {"type": "integer"}, "context_length": {"type": "integer"},
                "queue_capacity": {"type": "integer"}, "max_batch": {"type": "integer"},
                "keep_alive_secs": {"type": "integer"},
                "pii_inputs": pii_mode(), "pii_outputs": pii_mode()}}),
        ),
        op(
            "post",
            "/api/v1/library/{name}/load",
            "library",
            "Load a model now (admin)",
        ),
        op(
            "post",
            "/api/v1/library/{name}/unload",
            "library",
            "Unload a model now (admin)",
        ),
        op(
            "get",
            "/api/v1/ps",
            "library",
            "Loaded models: memory, slots, idle time",
        ),
        op(
            "get",
            "/api/v1/usage",
            "library",
            "Usage per key, model and day",
        ),
        op("get", "/v1/models", "openai", "Models (OpenAI format)"),
        op(
            "get",
            "/v1/models/{id}",
            "openai",
            "One model (OpenAI format)",
        ),
        with(
            op(
                "post",
                "/v1/chat/completions",
                "openai",
                "Chat completion (OpenAI; SSE when stream)",
            ),
            json!({"type": "object", "required": ["model", "messages"]}),
        ),
        with(
            op(
                "post",
                "/v1/completions",
                "openai",
                "Text completion (OpenAI; SSE when stream)",
            ),
            json!({"type": "object", "required": ["model", "prompt"]}),
        ),
        with(
            op(
                "post",
                "/v1/embeddings",
                "openai",
                "Embeddings (OpenAI format)",
            ),
            json!({"type": "object", "required": ["model", "input"]}),
        ),
        open(op("get", "/openapi.json", "operations", "This document")),
        open(op("get", "/docs", "operations", "Interactive API page")),
        open(op("get", "/", "console", "The web console (a single-page app over this API)")),
        open(op("get", "/assets/{file}", "console", "The web console's scripts and styles")),
        op("get", "/api/v1/me", "keys", "The calling key, its tenant and permissions"),
    ]
}

/// A PII masking mode, or null for none.
fn pii_mode() -> Value {
    json!({"type": ["string", "null"], "enum": ["mask", "label", "pseudonymise", null]})
}

/// The permission each authenticated operation needs, declared once (the core checks it
/// in the operation itself; the end-to-end tests prove the two agree for every role).
const PERMISSIONS: &[(&str, &str, &str)] = &[
    ("get", "/metrics", "read_metrics"),
    ("get", "/api/v1/tenants", "manage_tenants"),
    ("post", "/api/v1/tenants", "manage_tenants"),
    ("put", "/api/v1/tenants/{id}/limits", "manage_tenants"),
    ("put", "/api/v1/tenants/{id}/privacy", "manage_keys"),
    ("get", "/api/v1/me", "read_models"),
    ("get", "/api/v1/keys", "manage_keys"),
    ("post", "/api/v1/keys", "manage_keys"),
    ("put", "/api/v1/keys/{id}", "manage_keys"),
    ("delete", "/api/v1/keys/{id}", "manage_keys"),
    ("get", "/api/v1/datasets", "read_data"),
    ("post", "/api/v1/datasets", "write_data"),
    ("get", "/api/v1/datasets/{id}", "read_data"),
    ("delete", "/api/v1/datasets/{id}", "write_data"),
    ("get", "/api/v1/datasets/{id}/preview", "read_data"),
    ("get", "/api/v1/jobs", "read_data"),
    ("post", "/api/v1/jobs", "train"),
    ("get", "/api/v1/jobs/{id}", "read_data"),
    ("get", "/api/v1/jobs/{id}/events", "read_data"),
    ("post", "/api/v1/jobs/{id}/cancel", "train"),
    ("get", "/api/v1/models", "read_models"),
    ("get", "/api/v1/models/{name}", "read_models"),
    ("delete", "/api/v1/models/{name}", "deploy"),
    (
        "get",
        "/api/v1/models/{name}/versions/{version}",
        "read_models",
    ),
    ("post", "/api/v1/models/{name}/aliases", "deploy"),
    ("post", "/api/v1/models/{name}/deploy", "deploy"),
    ("post", "/api/v1/models/{name}/undeploy", "deploy"),
    ("post", "/api/v1/models/{name}/predict", "infer"),
    ("get", "/v2/models/{name}", "read_models"),
    ("get", "/v2/models/{name}/versions/{version}", "read_models"),
    ("get", "/v2/models/{name}/ready", "read_models"),
    (
        "get",
        "/v2/models/{name}/versions/{version}/ready",
        "read_models",
    ),
    ("post", "/v2/models/{name}/infer", "infer"),
    (
        "post",
        "/v2/models/{name}/versions/{version}/infer",
        "infer",
    ),
    ("get", "/api/v1/library", "read_models"),
    ("get", "/api/v1/library/catalogue", "read_models"),
    ("post", "/api/v1/library/pull", "manage_library"),
    ("get", "/api/v1/library/{name}", "read_models"),
    ("delete", "/api/v1/library/{name}", "manage_library"),
    ("put", "/api/v1/library/{name}/settings", "manage_library"),
    ("post", "/api/v1/library/{name}/load", "manage_library"),
    ("post", "/api/v1/library/{name}/unload", "manage_library"),
    ("get", "/api/v1/ps", "read_models"),
    ("get", "/api/v1/usage", "read_models"),
    ("get", "/v1/models", "read_models"),
    ("get", "/v1/models/{id}", "read_models"),
    ("post", "/v1/chat/completions", "infer"),
    ("post", "/v1/completions", "infer"),
    ("post", "/v1/embeddings", "infer"),
    ("post", "/api/v1/privacy/mask", "infer"),
    ("get", "/api/v1/audit", "read_audit"),
    ("get", "/api/v1/audit/export", "read_audit"),
    ("get", "/api/v1/audit/verify", "manage_tenants"),
];

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for o in operations() {
        let params: Vec<Value> = o
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut operation = json!({
            "tags": [o.tag],
            "summary": o.summary,
            "parameters": params,
            "responses": {
                "200": {"description": "success"},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"}
            }
        });
        if !o.auth {
            operation["security"] = json!([]);
        }
        if let Some((_, _, permission)) = PERMISSIONS
            .iter()
            .find(|(m, p, _)| *m == o.method && *p == o.path)
        {
            operation["x-aiaas-permission"] = json!(permission);
        }
        if let Some(schema) = o.body {
            let media = if o.path == "/api/v1/datasets" {
                "text/csv"
            } else {
                "application/json"
            };
            operation["requestBody"] = json!({"content": {media: {"schema": schema}}});
        }
        let entry = paths.entry(o.path.to_string()).or_insert_with(|| json!({}));
        entry[o.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "aiaas",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Self-hosted AI models as a service: datasets, training, registry, deployments, inference."
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Limits": {"type": "object", "properties": {
                "requests_per_minute": {"type": "integer", "minimum": 1},
                "burst": {"type": "integer", "minimum": 1},
                "tokens_per_minute": {"type": "integer", "minimum": 1},
                "tokens_per_month": {"type": "integer", "minimum": 1}}}},
            "responses": {"Error": {"description": "error", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"error": {"type": "object", "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}}}}}}}}}
        }
    })
}

const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>aiaas API</title>
<style>
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;color:#222}
h1{font-size:1.4rem} details{border:1px solid #ddd;border-radius:6px;margin:.4rem 0;padding:.4rem .7rem}
summary{cursor:pointer} code.m{display:inline-block;width:4rem;font-weight:bold;text-transform:uppercase}
textarea,input{width:100%;box-sizing:border-box;font-family:monospace} pre{background:#f5f5f5;padding:.5rem;overflow:auto;max-height:20rem}
label{display:block;margin:.3rem 0 .1rem;font-size:.9rem}
</style></head><body>
<h1>aiaas API</h1>
<p>The operations of <a href="/openapi.json">/openapi.json</a>. Your API key stays in this tab (session storage).</p>
<label for="key">API key</label><input id="key" type="password" autocomplete="off" placeholder="aiaas_...">
<div id="ops"></div>
<script>
const keyInput=document.getElementById('key');
keyInput.value=sessionStorage.getItem('aiaas-key')||'';
keyInput.addEventListener('input',()=>sessionStorage.setItem('aiaas-key',keyInput.value));
fetch('/openapi.json').then(r=>r.json()).then(doc=>{
  const root=document.getElementById('ops');
  for(const [path,ops] of Object.entries(doc.paths)){
    for(const [method,op] of Object.entries(ops)){
      const d=document.createElement('details');
      const s=document.createElement('summary');
      s.innerHTML='<code class="m"></code><code></code> — ';
      s.children[0].textContent=method; s.children[1].textContent=path; s.append(op.summary);
      d.append(s);
      const pathIn=document.createElement('input'); pathIn.value=path; pathIn.setAttribute('aria-label','path');
      const body=document.createElement('textarea'); body.rows=4; body.setAttribute('aria-label','body');
      if(op.requestBody){body.placeholder=JSON.stringify(Object.values(op.requestBody.content)[0].schema,null,1);}
      const btn=document.createElement('button'); btn.textContent='Send';
      const out=document.createElement('pre');
      btn.onclick=async()=>{
        const h={}; if(keyInput.value) h['Authorization']='Bearer '+keyInput.value;
        if(body.value) h['Content-Type']='application/json';
        try{const r=await fetch(pathIn.value,{method:method.toUpperCase(),headers:h,body:body.value||undefined});
          const t=await r.text(); let shown=t; try{shown=JSON.stringify(JSON.parse(t),null,2)}catch(e){}
          out.textContent=r.status+' '+r.statusText+'\n'+shown;}catch(e){out.textContent=String(e)}
      };
      d.append(pathIn); if(method!=='get'&&method!=='delete'){d.append(body)} d.append(btn,out);
      root.append(d);
    }
  }
});
</script></body></html>
"#;

#[cfg(test)]
mod tests {
    #[test]
    fn every_operation_has_a_summary_and_path_parameters() {
        let doc = super::document();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 30);
        for (path, ops) in paths {
            for (method, op) in ops.as_object().unwrap() {
                assert!(
                    op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                    "{method} {path}"
                );
                let declared = op["parameters"].as_array().unwrap().len();
                assert_eq!(declared, path.matches('{').count(), "{method} {path}");
            }
        }
    }
}
