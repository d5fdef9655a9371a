//! Text generation on llama.cpp (through the `llama-cpp-2` bindings): loading GGUF
//! models, rendering their chat templates, and a scheduler that decodes many sequences
//! together in one context (continuous batching).
//!
//! Architecture invariant: llama.cpp is only called from the thread that owns a model's
//! context (the scheduler) or from blocking helpers (`tokenize`, `render_chat`) that the
//! caller runs off the async runtime. The async world sees channels, never llama.cpp.
//!
//! API boundary: `LlmModel` (weights + metadata + template), `Generator` (the scheduler
//! of one loaded model), `GenerateRequest` in, `GenEvent`s out.

mod sampling;
mod scheduler;
mod sequence;
mod serving;
mod speculate;
mod template;
mod tools;
mod training;

use std::collections::HashMap;
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::token::LlamaToken;

pub use sampling::{SamplingParams, TokenLogprob, TopLogprob};
pub use scheduler::Generator;
pub use serving::{GenerationObserver, GeneratorSettings, GeneratorStats};
pub use template::{ChatMessage, ChatTemplate, TemplateCaps, ToolCall};
pub use tools::{
    Constraint, ParsedReply, ToolChoice, ToolPrompt, ToolRequest, ToolSpec, ToolSyntax,
};

/// Errors of loading and running generative models.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("model file could not be loaded: {0}")]
    Load(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error(
        "the prompt has {tokens} tokens; this model's context holds {max} (including the reply)"
    )]
    ContextExceeded { tokens: usize, max: usize },
    #[error("model {model} is overloaded: {queued} requests queued")]
    QueueFull { model: String, queued: usize },
    /// The queue policy: the request would wait (or has waited) `waited` for a slot,
    /// past the limit.
    #[error("model {model} is overloaded: a request would wait {} ms for a slot, over the limit of {} ms", waited.as_millis(), limit.as_millis())]
    QueueTimeout {
        model: String,
        waited: std::time::Duration,
        limit: std::time::Duration,
    },
    #[error("the chat template failed: {0}")]
    Template(String),
    #[error("generation failed: {0}")]
    Decode(String),
    #[error("the request ran past its time limit")]
    Timeout,
    #[error("model {0} was unloaded while the request waited")]
    Stopped(String),
}

/// One per process: llama.cpp's global state.
fn backend() -> Result<&'static LlamaBackend, LlmError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut b = LlamaBackend::init().map_err(|e| e.to_string())?;
            b.void_logs();
            Ok(b)
        })
        .as_ref()
        .map_err(|e| LlmError::Load(e.clone()))
}

/// What a loaded GGUF says about itself.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelInfo {
    pub architecture: String,
    pub name: Option<String>,
    pub parameters: u64,
    pub size_bytes: u64,
    pub context_length: u32,
    pub vocab_size: i32,
    pub embedding_length: i32,
    pub layers: u32,
    pub attention_heads: u32,
    /// Key/value heads (fewer than attention heads in grouped-query models).
    pub kv_heads: u32,
    pub chat_template: Option<String>,
}

impl ModelInfo {
    /// Bytes of KV cache one token takes: keys and values (f16) of every layer.
    pub fn kv_bytes_per_token(&self) -> u64 {
        let embd = self.embedding_length.max(0) as u64;
        // Saturating: the sizes come from the file's header; a wild one must not wrap into
        // a small estimate that slips past the memory budget.
        let kv_width =
            embd.saturating_mul(u64::from(self.kv_heads)) / u64::from(self.attention_heads.max(1));
        4u64.saturating_mul(u64::from(self.layers))
            .saturating_mul(kv_width)
    }
}

/// LoRA adapters loaded onto a model, by name. llama.cpp frees them with the model, and
/// attaching one to a context takes the handle mutably, hence the lock.
pub(crate) type Adapters = Arc<Mutex<HashMap<String, LlamaLoraAdapter>>>;

/// A GGUF model's weights (memory-mapped) and what is needed to prompt it.
pub struct LlmModel {
    model: Arc<LlamaModel>,
    info: ModelInfo,
    template: Option<ChatTemplate>,
    adapters: Adapters,
}

impl LlmModel {
    /// Load a GGUF file. Blocking (mmap + checks, well under a second for 100 MB).
    pub fn load(path: &Path) -> Result<LlmModel, LlmError> {
        LlmModel::load_with_adapters(path, &[])
    }

    /// Load a GGUF file and LoRA adapters for it (llama.cpp's GGUF adapter format), each
    /// under a name a generator can be started with. The base weights are loaded once
    /// and shared by every adapter. Adapters are attached at load because llama.cpp
    /// registers them on the model object, which serving shares immutably.
    pub fn load_with_adapters(
        path: &Path,
        adapters: &[(String, PathBuf)],
    ) -> Result<LlmModel, LlmError> {
        let backend = backend()?;
        if !path.is_file() {
            return Err(LlmError::Load(format!("{} is not a file", path.display())));
        }
        let params = LlamaModelParams::default();
        let mut model = LlamaModel::load_from_file(backend, path, &params)
            .map_err(|e| LlmError::Load(format!("{}: {e}", path.display())))?;
        let mut loaded = HashMap::new();
        for (name, file) in adapters {
            if !file.is_file() {
                return Err(LlmError::Load(format!(
                    "adapter {name}: {} is not a file",
                    file.display()
                )));
            }
            let adapter = model.lora_adapter_init(file).map_err(|e| {
                LlmError::Load(format!(
                    "adapter {name} ({}) does not fit this model: {e}",
                    file.display()
                ))
            })?;
            loaded.insert(name.clone(), adapter);
        }
        let meta = |k: &str| model.meta_val_str(k).ok().filter(|s| !s.is_empty());
        let chat_template = model
            .chat_template(None)
            .ok()
            .and_then(|t| t.to_string().ok());
        let vocab = model.vocab();
        let bos = piece(&model, vocab.bos());
        let eos = piece(&model, vocab.eos());
        let template = match &chat_template {
            Some(source) => Some(ChatTemplate::new(source, &bos, &eos)?),
            None => None,
        };
        let info = ModelInfo {
            architecture: meta("general.architecture").unwrap_or_default(),
            name: meta("general.name"),
            parameters: model.n_params(),
            size_bytes: model.size(),
            context_length: model.n_ctx_train(),
            vocab_size: model.n_vocab(),
            embedding_length: model.n_embd(),
            layers: model.n_layer(),
            attention_heads: model.n_head(),
            kv_heads: model.n_head_kv(),
            chat_template,
        };
        Ok(LlmModel {
            model: Arc::new(model),
            info,
            template,
            adapters: Arc::new(Mutex::new(loaded)),
        })
    }

    /// The names of the adapters loaded with the model.
    pub fn adapters(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .adapters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    /// The prompt of a conversation, rendered with the model's own template and ending
    /// where the assistant's reply begins.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String, LlmError> {
        match &self.template {
            Some(t) => t.render(messages),
            None => Err(LlmError::InvalidRequest(
                "this model has no chat template: use the completions endpoint".into(),
            )),
        }
    }

    /// The prompt of a conversation with tools, the reply's constraint, and the syntax
    /// to read calls back in (tools.rs).
    pub fn render_tool_chat(
        &self,
        messages: &[ChatMessage],
        tools: &ToolRequest,
    ) -> Result<ToolPrompt, LlmError> {
        match &self.template {
            Some(t) => tools.plan(t, messages),
            None => Err(LlmError::InvalidRequest(
                "this model has no chat template: use the completions endpoint".into(),
            )),
        }
    }

    /// Token ids of a prompt: the model's BOS added when it wants one (once, even when
    /// the rendered template already starts with it), special tokens parsed. Blocking.
    pub fn tokenize(&self, text: &str) -> Result<Vec<i32>, LlmError> {
        let vocab = self.model.vocab();
        let tokens = vocab.tokenize(text.as_bytes(), true, true);
        let mut ids: Vec<i32> = tokens.iter().map(|t| t.0).collect();
        let bos = vocab.bos().0;
        if ids.len() >= 2 && ids[0] == bos && ids[1] == bos {
            ids.remove(0);
        }
        Ok(ids)
    }

    /// The text of one token (special tokens render as nothing).
    pub fn token_text(&self, token: i32) -> String {
        String::from_utf8_lossy(&piece_bytes(&self.model, LlamaToken(token), false)).into_owned()
    }

    pub(crate) fn shared(&self) -> Arc<LlamaModel> {
        self.model.clone()
    }

    pub(crate) fn shared_adapters(&self) -> Adapters {
        self.adapters.clone()
    }
}

fn piece(model: &LlamaModel, token: LlamaToken) -> String {
    String::from_utf8_lossy(&piece_bytes(model, token, true)).into_owned()
}

pub(crate) fn piece_bytes(model: &LlamaModel, token: LlamaToken, special: bool) -> Vec<u8> {
    model
        .vocab()
        .token_to_piece(token, special, None::<NonZeroU16>)
}

/// Why a sequence ended, in OpenAI's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn, or a stop string was met.
    Stop,
    /// `max_tokens` or the context was reached.
    Length,
}

/// One request to generate from a tokenized prompt.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub prompt: Vec<i32>,
    pub sampling: SamplingParams,
    pub max_tokens: Option<usize>,
    /// Strings that end the reply; never emitted.
    pub stop: Vec<String>,
    /// When set, a llama.cpp grammar (GBNF) the reply must follow (from its start, or
    /// lazily from a trigger).
    pub grammar: Option<Constraint>,
    /// Number of most likely alternatives to report per token (`None`: no logprobs).
    pub logprobs: Option<usize>,
    /// Give up after this long (queue wait included).
    pub timeout: Option<std::time::Duration>,
    /// Who may share cached prompt prefixes with this request (e.g. the tenant): a
    /// sequence only reuses the KV cache left by a request of the same scope, so one
    /// tenant cannot learn from timings what another has prompted.
    pub cache_scope: String,
}

/// Token counts and timings of a finished sequence.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV cache was reused from an earlier request (not recomputed).
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    /// Queue wait + prefill until the first generated token.
    pub time_to_first_token: Option<std::time::Duration>,
    pub total_time: std::time::Duration,
}

/// What a sequence reports, in order: `Started` when it gets a slot, `Text`*, then exactly
/// one `Done` or `Error` (an `Error` may also come before `Started`: refused while queued).
#[derive(Debug, Clone)]
pub enum GenEvent {
    /// The sequence has a slot and starts (sent once, before its first text): until it
    /// comes, the request may still be refused for waiting too long.
    Started,
    /// New text of the reply (possibly empty while a stop string might be forming), and
    /// the tokens sampled since the last event when logprobs were asked for.
    Text {
        text: String,
        logprobs: Vec<TokenLogprob>,
    },
    Done {
        reason: FinishReason,
        usage: Usage,
    },
    Error(LlmError),
}

/// The GBNF grammar of one JSON value with an object at the top (for `json_object`).
pub fn json_object_grammar() -> Result<String, LlmError> {
    json_schema_grammar(r#"{"type": "object"}"#)
}

/// A GBNF grammar accepting exactly the JSON documents valid under a JSON schema.
pub fn json_schema_grammar(schema: &str) -> Result<String, LlmError> {
    serde_json::from_str::<serde_json::Value>(schema)
        .map_err(|e| LlmError::InvalidRequest(format!("the JSON schema does not parse: {e}")))?;
    llama_cpp_2::json_schema_to_grammar(schema)
        .map_err(|e| LlmError::InvalidRequest(format!("unsupported JSON schema: {e}")))
}
