//! Inference on library models: chat and text completion (generation on llama.cpp) and
//! sentence embeddings. Requests arrive validated (`ChatRequest`, `CompletionRequest`,
//! `EmbeddingRequest`); this module checks the caller's rights, loads the model on first
//! use, renders and tokenizes the prompt off the async runtime, and admits one sequence
//! per choice. Usage is recorded per key when a request's sequences have ended.

use std::sync::Arc;
use std::time::Duration;

use aiaas_engine::llm::{
    self, ChatMessage, Constraint, GenEvent, GenerateRequest, LlmError, SamplingParams, ToolChoice,
    ToolRequest, ToolSyntax,
};
use aiaas_engine::Engine;
use aiaas_store::{LibraryModelRecord, Metadata, UsageRecord};
use aiaas_types::{Permission, Principal, Task};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::events::GenerationEvents;

use crate::auth::require;
use crate::library::Library;
use crate::library::{runtime_key, KeepAlive, ServingSettings};
use crate::limits::Limiter;
use crate::privacy::{OutputMasking, Privacy};
use crate::{CoreError, Result};

/// Most choices (`n`) and prompts per request.
pub const MAX_CHOICES: usize = 16;
/// Most texts per embeddings request.
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

/// What the reply must look like.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ResponseFormat {
    #[default]
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON valid under this schema (a JSON document).
    JsonSchema(String),
}

/// Parameters shared by chat and completions, already checked for shape by the API.
#[derive(Debug, Clone, Default)]
pub struct GenerationOptions {
    pub max_tokens: Option<usize>,
    /// `None`: the model's default.
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<u64>,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    pub stop: Vec<String>,
    pub n: usize,
    /// Alternatives per token to report (`Some(0)`: only the chosen token's).
    pub logprobs: Option<usize>,
    pub response_format: ResponseFormat,
    pub keep_alive: Option<KeepAlive>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub options: GenerationOptions,
    /// Function tools the model may call (llm's tools.rs).
    pub tools: Option<ToolRequest>,
}

#[derive(Debug, Clone)]
pub struct CompletionRequest {
    pub model: String,
    pub prompts: Vec<String>,
    pub options: GenerationOptions,
}

#[derive(Debug, Clone)]
pub struct EmbeddingRequest {
    pub model: String,
    pub inputs: Vec<String>,
    /// Cut texts longer than the model's limit (else 413).
    pub truncate: bool,
    pub keep_alive: Option<KeepAlive>,
}

/// Running sequences: `choices[p * n + i]` is choice `i` of prompt `p`.
pub struct Generation {
    pub model: String,
    /// Prompt tokens of each prompt (one for chat).
    pub prompt_tokens: Vec<usize>,
    /// Every choice's events as one stream (`n` choices per prompt, prompt-major).
    pub events: GenerationEvents,
    /// Set when the model may call tools: how to read the calls out of each choice's
    /// finished text.
    pub tools: Option<ToolSyntax>,
    /// The model's queue policy, and when the sequences were queued.
    queue_limit: Option<std::time::Duration>,
    queued_at: std::time::Instant,
}

impl Generation {
    /// Where the model has a queue policy, wait until every choice has a slot (at most
    /// the policy's limit; see [`GenerationEvents::started`]); at once otherwise.
    /// Streamed replies call this before their headers, so that a request the policy
    /// refuses is a 429 with `Retry-After`, not an error event in a 200 stream.
    pub async fn wait_for_slots(&mut self) -> Result<()> {
        match self.queue_limit {
            Some(limit) => {
                self.events
                    .started(&self.model, self.queued_at, limit)
                    .await
            }
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingOutput {
    pub model: String,
    pub vectors: Vec<Vec<f32>>,
    pub truncated: Vec<bool>,
    pub prompt_tokens: usize,
}

/// What a request's `model` names: a library model, or a tenant's fine-tuned model (a
/// LoRA adapter served on its library base).
struct Target {
    /// The library model that serves it (the base of a fine-tuned model).
    record: LibraryModelRecord,
    /// The name the caller used, in replies and usage.
    name: String,
    /// The adapter to apply (a fine-tuned model's name).
    adapter: Option<String>,
}

/// The inference service of library models: chat, completions and embeddings, usage
/// recorded per key, token quotas checked before and charged after.
#[derive(Clone)]
pub struct Inference {
    inner: Arc<InferenceState>,
}

struct InferenceState {
    meta: Metadata,
    engine: Arc<Engine>,
    /// Resolves and loads the library models called.
    library: Library,
    privacy: Privacy,
    limiter: Limiter,
}

impl Inference {
    pub(crate) fn new(
        meta: Metadata,
        engine: Arc<Engine>,
        library: Library,
        privacy: Privacy,
        limiter: Limiter,
    ) -> Inference {
        Inference {
            inner: Arc::new(InferenceState {
                meta,
                engine,
                library,
                privacy,
                limiter,
            }),
        }
    }

    /// Start a chat completion: `n` sequences of one conversation.
    pub async fn chat(&self, principal: &Principal, req: ChatRequest) -> Result<Generation> {
        let target = self.metered_model(principal, &req.model).await?;
        let record = &target.record;
        if record.task == Task::Embedding {
            return Err(CoreError::InvalidInput(format!(
                "model {:?} is an embedding model: use /v1/embeddings",
                record.name
            )));
        }
        if req.messages.is_empty() {
            return Err(CoreError::InvalidInput("messages must not be empty".into()));
        }
        let privacy = ServingSettings::of(record);
        let output = self
            .inner
            .privacy
            .output_masking(
                principal,
                (privacy.pii_outputs, privacy.pii_detectors.as_deref()),
            )
            .await?;
        refuse_masked_logprobs(&output, &req.options)?;
        let mut messages = req.messages;
        // Every text the model will read: contents, and the arguments of earlier calls.
        let mut texts: Vec<&mut String> = Vec::new();
        for ChatMessage {
            content,
            tool_calls,
            ..
        } in messages.iter_mut()
        {
            texts.push(content);
            for call in tool_calls.iter_mut() {
                texts.push(&mut call.arguments);
            }
        }
        self.inner
            .privacy
            .mask_model_inputs(
                principal,
                (privacy.pii_inputs, privacy.pii_detectors.as_deref()),
                texts,
            )
            .await?;
        let tools = req.tools.filter(|t| !t.tools.is_empty());
        let calling = tools.as_ref().is_some_and(|t| t.choice != ToolChoice::None);
        if calling && req.options.response_format != ResponseFormat::Text {
            return Err(CoreError::InvalidInput(
                "response_format cannot be combined with tools that may be called: the reply's format is the tool calls' (use tool_choice \"none\" for a formatted answer)".into(),
            ));
        }
        let (runtime, generator) = self
            .inner
            .library
            .generator_with(record, target.adapter.as_deref(), req.options.keep_alive)
            .await?;
        let rt = runtime.clone();
        let (prompt, constraint, syntax) = tokio::task::spawn_blocking(move || {
            let model = rt.model();
            let (text, constraint, syntax) = match &tools {
                Some(t) => {
                    let plan = model.render_tool_chat(&messages, t)?;
                    let syntax = (t.choice != ToolChoice::None).then_some(plan.syntax);
                    (plan.prompt, plan.constraint, syntax)
                }
                None => (model.render_chat(&messages)?, None, None),
            };
            Ok::<_, LlmError>((model.tokenize(&text)?, constraint, syntax))
        })
        .await??;
        let mut generation = self.admit_sequences(
            principal,
            &target,
            (&runtime, &generator),
            vec![prompt],
            &req.options,
            constraint,
            output,
        )?;
        generation.tools = syntax;
        Ok(generation)
    }

    /// Start a text completion: `n` sequences for each prompt.
    pub async fn complete(
        &self,
        principal: &Principal,
        req: CompletionRequest,
    ) -> Result<Generation> {
        let target = self.metered_model(principal, &req.model).await?;
        let record = &target.record;
        if record.task == Task::Embedding {
            return Err(CoreError::InvalidInput(format!(
                "model {:?} is an embedding model: use /v1/embeddings",
                record.name
            )));
        }
        if req.prompts.is_empty() || req.prompts.len() * req.options.n.max(1) > MAX_CHOICES {
            return Err(CoreError::InvalidInput(format!(
                "give 1 to {MAX_CHOICES} prompts (times n) per request"
            )));
        }
        let privacy = ServingSettings::of(record);
        let output = self
            .inner
            .privacy
            .output_masking(
                principal,
                (privacy.pii_outputs, privacy.pii_detectors.as_deref()),
            )
            .await?;
        refuse_masked_logprobs(&output, &req.options)?;
        let mut prompts = req.prompts;
        self.inner
            .privacy
            .mask_model_inputs(
                principal,
                (privacy.pii_inputs, privacy.pii_detectors.as_deref()),
                prompts.iter_mut(),
            )
            .await?;
        let (runtime, generator) = self
            .inner
            .library
            .generator_with(record, target.adapter.as_deref(), req.options.keep_alive)
            .await?;
        let rt = runtime.clone();
        let tokens = tokio::task::spawn_blocking(move || {
            prompts
                .iter()
                .map(|p| rt.model().tokenize(p))
                .collect::<Result<Vec<_>, LlmError>>()
        })
        .await??;
        self.admit_sequences(
            principal,
            &target,
            (&runtime, &generator),
            tokens,
            &req.options,
            None,
            output,
        )
    }

    /// Embed texts with a library embedding model.
    pub async fn embed(
        &self,
        principal: &Principal,
        req: EmbeddingRequest,
    ) -> Result<EmbeddingOutput> {
        // Under overload the queue policy refuses most requests: refuse them before the
        // database lookups below, which would otherwise cost a refusal more than the
        // model's own share of the server (measured in bench/queue).
        require(principal, Permission::Infer)?;
        let name = crate::library::strip_tag(&req.model);
        if principal.may_call_model(name) {
            self.inner.engine.check_queue_policy(&runtime_key(name))?;
        }
        let target = self.metered_model(principal, &req.model).await?;
        let record = target.record;
        if record.task != Task::Embedding || target.adapter.is_some() {
            return Err(CoreError::InvalidInput(format!(
                "model {:?} is not an embedding model",
                record.name
            )));
        }
        if req.inputs.is_empty() || req.inputs.len() > MAX_EMBEDDING_INPUTS {
            return Err(CoreError::InvalidInput(format!(
                "give 1 to {MAX_EMBEDDING_INPUTS} inputs"
            )));
        }
        let mut inputs = req.inputs;
        let serving = ServingSettings::of(&record);
        self.inner
            .privacy
            .mask_model_inputs(
                principal,
                (serving.pii_inputs, serving.pii_detectors.as_deref()),
                inputs.iter_mut(),
            )
            .await?;
        let key = self
            .inner
            .library
            .embedder_for(&record, req.keep_alive)
            .await?;
        let out = self.inner.engine.embed(&key, inputs).await?;
        if !req.truncate {
            if let Some((i, e)) = out.iter().enumerate().find(|(_, e)| e.truncated) {
                let max = self
                    .inner
                    .engine
                    .embedder_info(&key)
                    .map_or(0, |(_, max)| max);
                return Err(CoreError::PayloadTooLarge(format!(
                    "input {i} has {} tokens; model {:?} takes at most {max} (set truncate to cut it)",
                    e.tokens, record.name
                )));
            }
        }
        let prompt_tokens = out.iter().map(|e| e.tokens).sum();
        self.record_usage(principal, &record.name, prompt_tokens, 0)
            .await;
        Ok(EmbeddingOutput {
            model: record.name,
            truncated: out.iter().map(|e| e.truncated).collect(),
            vectors: out.into_iter().map(|e| e.vector).collect(),
            prompt_tokens,
        })
    }

    /// A library model, or a fine-tuned model of the caller's tenant, that the caller
    /// may call (its key's allow-list).
    async fn callable_model(&self, principal: &Principal, name: &str) -> Result<Target> {
        require(principal, Permission::Infer)?;
        if crate::finetune::is_fine_tuned_name(name) {
            // A checkpoint is called by keys that may call it or its fine-tuned model.
            let checkpoint = crate::finetune::checkpoint_name(name);
            if !principal.may_call_model(name)
                && !checkpoint.is_some_and(|(model, _)| principal.may_call_model(model))
            {
                return Err(CoreError::Forbidden(format!(
                    "this API key may not use model {name:?}"
                )));
            }
            let base = if checkpoint.is_some() {
                let (base, checkpoint) =
                    crate::finetune::checkpoint_of(&self.inner.meta, &principal.tenant_id, name)
                        .await?;
                self.inner
                    .library
                    .use_checkpoint(&base, name, checkpoint.adapter_key);
                base
            } else {
                crate::finetune::base_of(&self.inner.meta, &principal.tenant_id, name).await?
            };
            let record = self.inner.meta.library_model(&base).await?.ok_or_else(|| {
                CoreError::NotFound(format!(
                    "model {name:?} was fine-tuned on {base:?}, which is no longer in the library"
                ))
            })?;
            return Ok(Target {
                record,
                name: name.to_string(),
                adapter: Some(name.to_string()),
            });
        }
        let name = crate::library::strip_tag(name);
        if !principal.may_call_model(name) {
            return Err(CoreError::Forbidden(format!(
                "this API key may not use model {name:?}"
            )));
        }
        let record = self.inner.meta.library_model(name).await?.ok_or_else(|| {
            CoreError::NotFound(format!(
                "no model {name:?}; an admin can pull it with `aiaas pull {name}`"
            ))
        })?;
        Ok(Target {
            name: record.name.clone(),
            record,
            adapter: None,
        })
    }

    /// Admit every sequence or none. `constraint`, when given, is the replies' grammar
    /// (tool calls); otherwise `response_format` decides.
    #[allow(clippy::too_many_arguments)]
    fn admit_sequences(
        &self,
        principal: &Principal,
        target: &Target,
        (runtime, generator): (&aiaas_engine::GeneratorRuntime, &llm::Generator),
        prompts: Vec<Vec<i32>>,
        o: &GenerationOptions,
        constraint: Option<Constraint>,
        output: Option<OutputMasking>,
    ) -> Result<Generation> {
        let defaults = &target.record.defaults;
        let default_f32 = |k: &str, fallback: f32| {
            defaults
                .get(k)
                .and_then(serde_json::Value::as_f64)
                .map_or(fallback, |v| v as f32)
        };
        let grammar = match (constraint, &o.response_format) {
            (Some(c), _) => Some(c),
            (None, ResponseFormat::Text) => None,
            (None, ResponseFormat::JsonObject) => {
                Some(Constraint::always(llm::json_object_grammar()?))
            }
            (None, ResponseFormat::JsonSchema(schema)) => {
                Some(Constraint::always(llm::json_schema_grammar(schema)?))
            }
        };
        let n = o.n.max(1);
        let queued_at = std::time::Instant::now();
        let mut choices = Vec::with_capacity(prompts.len() * n);
        let prompt_tokens: Vec<usize> = prompts.iter().map(Vec::len).collect();
        for prompt in prompts {
            for i in 0..n {
                let request = GenerateRequest {
                    prompt: prompt.clone(),
                    sampling: SamplingParams {
                        temperature: o
                            .temperature
                            .unwrap_or_else(|| default_f32("temperature", 1.0)),
                        top_p: o.top_p.unwrap_or_else(|| default_f32("top_p", 1.0)),
                        // Choices of one request differ; each is reproducible from the seed.
                        seed: o.seed.map(|s| s.wrapping_add(i as u64)),
                        presence_penalty: o.presence_penalty,
                        frequency_penalty: o.frequency_penalty,
                    },
                    max_tokens: o.max_tokens,
                    stop: o.stop.clone(),
                    grammar: grammar.clone(),
                    logprobs: o.logprobs,
                    timeout: o.timeout,
                    // Cached prompt prefixes are shared within a tenant, never across.
                    cache_scope: principal.tenant_id.clone(),
                };
                // Dropping the receivers already admitted cancels their sequences.
                choices.push(runtime.submit_to(generator, request)?);
            }
        }
        let prompt_total = prompt_tokens.iter().sum();
        let events = self.account(principal, &target.name, prompt_total, choices, output);
        Ok(Generation {
            model: target.name.clone(),
            prompt_tokens,
            events,
            tools: None,
            queue_limit: generator.settings().max_queue_time,
            queued_at,
        })
    }

    /// A model the caller may call now: allowed (404/403 otherwise) and within the key's
    /// and tenant's token limits (429 otherwise).
    async fn metered_model(&self, principal: &Principal, name: &str) -> Result<Target> {
        let target = self.callable_model(principal, name).await?;
        self.inner.limiter.check_token_quota(principal).await?;
        Ok(target)
    }

    /// The generation's one event stream; it records the request's usage when its
    /// sequences have ended.
    fn account(
        &self,
        principal: &Principal,
        model: &str,
        prompt_tokens: usize,
        choices: Vec<UnboundedReceiver<GenEvent>>,
        output: Option<OutputMasking>,
    ) -> GenerationEvents {
        let p = self.clone();
        let principal = principal.clone();
        let model = model.to_string();
        // Every sequence that ran counts its tokens; the prompt counts once.
        let record = Box::new(move |completion: usize| {
            tokio::spawn(async move {
                p.record_usage(&principal, &model, prompt_tokens, completion)
                    .await;
            });
        });
        GenerationEvents::new(choices, output, record)
    }

    /// Recorded usage per key, model and day: everything for admins, the tenant's for
    /// owners and developers, the key's own for inference keys.
    pub async fn usage(&self, principal: &Principal) -> Result<Vec<UsageRecord>> {
        require(principal, Permission::ReadModels)?;
        let scope = (!principal.is_admin()).then_some(principal.tenant_id.as_str());
        let mut rows = self.inner.meta.usage(scope).await?;
        if principal.role == aiaas_types::Role::Inference {
            rows.retain(|r| r.key_id == principal.key_id);
        }
        Ok(rows)
    }

    pub(crate) async fn record_usage(
        &self,
        principal: &Principal,
        model: &str,
        prompt_tokens: usize,
        completion_tokens: usize,
    ) {
        self.inner
            .limiter
            .charge_tokens(principal, (prompt_tokens + completion_tokens) as u64)
            .await;
        let day = aiaas_types::utc_day(aiaas_types::now_ms());
        let record = UsageRecord {
            tenant_id: principal.tenant_id.clone(),
            key_id: principal.key_id.clone(),
            model: model.to_string(),
            day,
            requests: 1,
            prompt_tokens: prompt_tokens as i64,
            completion_tokens: completion_tokens as i64,
        };
        if let Err(e) = self.inner.meta.record_usage(&record).await {
            tracing::warn!(error = %e, "usage not recorded");
        }
    }
}

/// `YYYY-MM-DD` (UTC) of an epoch-milliseconds time.
/// Token log-probabilities would show the unmasked tokens of a masked reply.
fn refuse_masked_logprobs(output: &Option<OutputMasking>, o: &GenerationOptions) -> Result<()> {
    if output.is_some() && o.logprobs.is_some() {
        return Err(CoreError::InvalidInput(
            "logprobs are not available here: this model's replies are masked by a PII policy"
                .into(),
        ));
    }
    Ok(())
}
