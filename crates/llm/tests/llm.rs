//! The generation scheduler on real weights (SmolLM2-135M-Instruct, Q4_1 GGUF, which the
//! set-up script extracts to `$AIAAS_TEST_DATA/models/smollm2-135m-instruct.gguf`).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use aiaas_llm::{
    ChatMessage, FinishReason, GenEvent, GenerateRequest, Generator, GeneratorSettings, LlmError,
    LlmModel, SamplingParams, Usage,
};

fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("AIAAS_LLM_GGUF") {
        return PathBuf::from(p);
    }
    aiaas_testkit::test_data_file("models/smollm2-135m-instruct.gguf")
}

fn model() -> &'static LlmModel {
    static MODEL: OnceLock<LlmModel> = OnceLock::new();
    MODEL.get_or_init(|| LlmModel::load(&model_path()).expect("model loads"))
}

fn greedy(prompt: Vec<i32>, max_tokens: usize) -> GenerateRequest {
    GenerateRequest {
        prompt,
        sampling: SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        },
        max_tokens: Some(max_tokens),
        stop: Vec::new(),
        grammar: None,
        logprobs: None,
        timeout: None,
        cache_scope: String::new(),
    }
}

fn chat_prompt(text: &str) -> Vec<i32> {
    let m = model();
    let rendered = m.render_chat(&[ChatMessage::new("user", text)]).unwrap();
    m.tokenize(&rendered).unwrap()
}

/// Gather one sequence's text and ending.
async fn run(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<GenEvent>,
) -> (String, FinishReason, usize) {
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            GenEvent::Text { text: t, .. } => text.push_str(&t),
            GenEvent::Done { reason, usage } => return (text, reason, usage.completion_tokens),
            GenEvent::Started => {}
            GenEvent::Error(e) => panic!("generation failed: {e}"),
        }
    }
    panic!("stream ended without Done");
}

/// Gather one sequence's text and usage.
async fn run_usage(mut rx: tokio::sync::mpsc::UnboundedReceiver<GenEvent>) -> (String, Usage) {
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            GenEvent::Text { text: t, .. } => text.push_str(&t),
            GenEvent::Done { usage, .. } => return (text, usage),
            GenEvent::Started => {}
            GenEvent::Error(e) => panic!("generation failed: {e}"),
        }
    }
    panic!("stream ended without Done");
}

fn small(slots: usize, queue: usize) -> GeneratorSettings {
    GeneratorSettings {
        slots,
        context_per_slot: 1024,
        queue_capacity: queue,
        ..GeneratorSettings::default()
    }
}

#[test]
fn metadata_and_template() {
    let m = model();
    assert_eq!(m.info().architecture, "llama");
    assert!(m.info().context_length >= 2048);
    assert!(m.has_chat_template());
    let prompt = m.render_chat(&[ChatMessage::new("user", "Hi")]).unwrap();
    // SmolLM2's own template adds its default system message (llama.cpp's built-in
    // ChatML matching drops it).
    assert!(prompt.starts_with("<|im_start|>system\n"), "{prompt}");
    assert!(prompt.ends_with("<|im_start|>assistant\n"), "{prompt}");
    let ids = m.tokenize(&prompt).unwrap();
    assert!(ids.len() > 10);
    // The rendered template starts with <|im_start|>; no BOS is doubled in front of it.
    assert_ne!(ids[0], ids[1]);
    assert_eq!(m.token_text(ids[1]), "system");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sequences_match_sequential_greedy_runs() {
    let g = Generator::start(model(), "test", small(4, 16), None).unwrap();
    let prompts = [
        "What is the capital of France?",
        "Write one sentence about the sea.",
        "Name three colours.",
        "Count from one to five.",
        "Say hello in Spanish.",
        "What is 2 + 2?",
    ];
    let mut alone = Vec::new();
    for p in prompts {
        alone.push(run(g.submit(greedy(chat_prompt(p), 24)).unwrap()).await);
    }
    let receivers: Vec<_> = prompts
        .iter()
        .map(|p| g.submit(greedy(chat_prompt(p), 24)).unwrap())
        .collect();
    let mut together = Vec::new();
    for rx in receivers {
        together.push(run(rx).await);
    }
    for (i, (a, b)) in alone.iter().zip(&together).enumerate() {
        assert!(!a.0.is_empty(), "prompt {i} produced text");
        assert_eq!(
            a, b,
            "prompt {i}: batched decoding must not change greedy output"
        );
    }
    let s = g.stats();
    assert_eq!(s.slots_busy, 0);
    assert_eq!(g.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_strings_max_tokens_and_seeds() {
    let g = Generator::start(model(), "test", small(2, 8), None).unwrap();
    let (text, reason, n) = run(g
        .submit(greedy(
            chat_prompt("Tell me a long story about a dragon."),
            7,
        ))
        .unwrap())
    .await;
    assert_eq!((reason, n), (FinishReason::Length, 7), "{text}");

    // Stop at the first space: the reply is one word, the stop string is not in it.
    let mut req = greedy(chat_prompt("Tell me a long story about a dragon."), 64);
    req.stop = vec![" ".into()];
    let (text, reason, _) = run(g.submit(req).unwrap()).await;
    assert_eq!(reason, FinishReason::Stop);
    assert!(!text.contains(' ') && !text.is_empty(), "{text:?}");

    let sampled = |seed| {
        let mut r = greedy(chat_prompt("Invent a name for a cat."), 16);
        r.sampling = SamplingParams {
            temperature: 1.0,
            seed: Some(seed),
            ..SamplingParams::default()
        };
        r
    };
    let a = run(g.submit(sampled(42)).unwrap()).await;
    let b = run(g.submit(sampled(42)).unwrap()).await;
    assert_eq!(a, b, "same seed, same text");
    let others: Vec<_> = [1u64, 2, 3, 4]
        .into_iter()
        .map(|s| g.submit(sampled(s)).unwrap())
        .collect();
    let mut distinct = std::collections::HashSet::new();
    for rx in others {
        distinct.insert(run(rx).await.0);
    }
    assert!(distinct.len() > 1, "different seeds give different texts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logprobs_and_json_grammar() {
    let g = Generator::start(model(), "test", small(2, 8), None).unwrap();
    let mut req = greedy(chat_prompt("Say yes."), 5);
    req.logprobs = Some(3);
    let mut rx = g.submit(req).unwrap();
    let mut entries = Vec::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            GenEvent::Text { logprobs, .. } => entries.extend(logprobs),
            GenEvent::Done { .. } => break,
            GenEvent::Started => {}
            GenEvent::Error(e) => panic!("{e}"),
        }
    }
    assert!(!entries.is_empty());
    for e in &entries {
        assert!(e.logprob <= 0.0);
        assert_eq!(e.top_logprobs.len(), 3);
        // Greedy: the chosen token is the most likely one.
        assert!(
            (e.top_logprobs[0].logprob - e.logprob).abs() < 1e-4,
            "{e:?}"
        );
        assert!(e
            .top_logprobs
            .windows(2)
            .all(|w| w[0].logprob >= w[1].logprob));
    }

    let schema = r#"{"type":"object","properties":{"name":{"type":"string","maxLength":20},"age":{"type":"integer"}},"required":["name","age"]}"#;
    let mut req = greedy(chat_prompt("Describe a person as JSON."), 80);
    req.grammar = Some(aiaas_llm::Constraint::always(
        aiaas_llm::json_schema_grammar(schema).unwrap(),
    ));
    let (text, reason, _) = run(g.submit(req).unwrap()).await;
    assert_eq!(reason, FinishReason::Stop, "{text}");
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(v["name"].is_string() && v["age"].is_i64(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_cancellation_and_limits() {
    let g = Generator::start(model(), "test", small(1, 2), None).unwrap();
    let long = || greedy(chat_prompt("Write a very long essay about rivers."), 400);
    let first = g.submit(long()).unwrap();
    let second = g.submit(long()).unwrap();
    match g.submit(long()) {
        Err(LlmError::QueueFull { .. }) => {}
        other => panic!("expected QueueFull, got {other:?}"),
    }
    // Cancelling frees the slot: the next request runs at once.
    drop(first);
    drop(second);
    let t = std::time::Instant::now();
    while g.in_flight() > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "cancelled sequences must leave"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, reason, n) = run(g.submit(greedy(chat_prompt("Hi"), 3)).unwrap()).await;
    assert_eq!((reason, n), (FinishReason::Length, 3));

    let too_long = vec![1; 1024];
    assert!(matches!(
        g.submit(greedy(too_long, 4)),
        Err(LlmError::ContextExceeded {
            tokens: 1024,
            max: 1024
        })
    ));
    let mut bad = greedy(chat_prompt("Hi"), 4);
    bad.sampling.temperature = 3.0;
    assert!(matches!(g.submit(bad), Err(LlmError::InvalidRequest(_))));

    let mut slow = long();
    slow.timeout = Some(Duration::from_millis(200));
    let mut rx = g.submit(slow).unwrap();
    let mut timed_out = false;
    while let Some(ev) = rx.recv().await {
        if let GenEvent::Error(LlmError::Timeout) = ev {
            timed_out = true;
        }
    }
    assert!(timed_out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_policy_refuses_what_would_wait_too_long() {
    let mut settings = small(1, 8);
    settings.max_queue_time = Some(Duration::from_millis(200));
    let g = Generator::start(model(), "test", settings, None).unwrap();
    let long = || greedy(chat_prompt("Write a very long essay about rivers."), 300);
    // One request takes the only slot, the next waits: a fresh queue admits it.
    let mut first = g.submit(long()).unwrap();
    assert!(matches!(first.recv().await, Some(GenEvent::Started)));
    let mut second = g.submit(long()).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The waiting request has waited past the limit: a new one is refused at once.
    match g.submit(long()) {
        Err(LlmError::QueueTimeout { waited, limit, .. }) => {
            assert!(waited > limit, "{waited:?} <= {limit:?}")
        }
        other => panic!("expected QueueTimeout, got {other:?}"),
    }
    // When the slot frees, the request that waited too long is answered without running.
    drop(first);
    match tokio::time::timeout(Duration::from_secs(30), second.recv()).await {
        Ok(Some(GenEvent::Error(LlmError::QueueTimeout { waited, .. }))) => {
            assert!(waited >= Duration::from_millis(400))
        }
        other => panic!("expected a QueueTimeout event, got {other:?}"),
    }
    // With nothing waiting, requests are admitted and answered again.
    let t = std::time::Instant::now();
    while g.in_flight() > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the queue must empty"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (text, _, _) = run(g.submit(greedy(chat_prompt("Say hi."), 8)).unwrap()).await;
    assert!(!text.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_prompt_prefixes_are_reused_within_a_scope() {
    let question = chat_prompt("Tell me about dogs.");
    let other = chat_prompt("Tell me about cats.");
    let shared = other
        .iter()
        .zip(&question)
        .take_while(|(a, b)| a == b)
        .count();
    assert!(
        shared > 10,
        "the template's system message is a shared prefix"
    );

    // The reference: a fresh context, nothing cached.
    let fresh = Generator::start(model(), "fresh", small(1, 4), None).unwrap();
    let (reference, usage) = run_usage(fresh.submit(greedy(question.clone(), 24)).unwrap()).await;
    assert_eq!(usage.cached_tokens, 0);
    drop(fresh);

    let g = Generator::start(model(), "cached", small(1, 4), None).unwrap();
    let (_, usage) = run_usage(g.submit(greedy(other.clone(), 24)).unwrap()).await;
    assert_eq!(usage.cached_tokens, 0, "nothing to reuse yet");

    // Same system message, another question: the shared prefix is reused, the reply is
    // the one computed from scratch.
    let (text, usage) = run_usage(g.submit(greedy(question.clone(), 24)).unwrap()).await;
    assert_eq!(usage.cached_tokens, shared);
    assert_eq!(usage.prompt_tokens, question.len());
    assert_eq!(text, reference);

    // The very same prompt: all but its last token (whose logits start the reply).
    let (text, usage) = run_usage(g.submit(greedy(question.clone(), 24)).unwrap()).await;
    assert_eq!(usage.cached_tokens, question.len() - 1);
    assert_eq!(text, reference);

    // The next turn of the conversation starts with the whole previous prompt.
    let m = model();
    let turn = |role: &str, content: &str| ChatMessage::new(role, content);
    let follow_up = m
        .tokenize(
            &m.render_chat(&[
                turn("user", "Tell me about dogs."),
                turn("assistant", &reference),
                turn("user", "And cats?"),
            ])
            .unwrap(),
        )
        .unwrap();
    let (_, usage) = run_usage(g.submit(greedy(follow_up.clone(), 8)).unwrap()).await;
    let follow_up_cached = usage.cached_tokens;
    assert!(
        usage.cached_tokens >= question.len() && usage.cached_tokens < follow_up.len(),
        "{} cached of {} ({} in the first turn)",
        usage.cached_tokens,
        follow_up.len(),
        question.len()
    );

    // Another scope (tenant) never reuses what this one left.
    let mut foreign = greedy(question.clone(), 24);
    foreign.cache_scope = "another-tenant".into();
    let (text, usage) = run_usage(g.submit(foreign).unwrap()).await;
    assert_eq!(usage.cached_tokens, 0);
    assert_eq!(text, reference);
    assert_eq!(
        g.stats().cached_tokens_total as usize,
        shared + (question.len() - 1) + follow_up_cached
    );
}

// ---------------------------------------------------------------- tools

fn weather_tools(choice: aiaas_llm::ToolChoice, parallel: bool) -> aiaas_llm::ToolRequest {
    aiaas_llm::ToolRequest {
        tools: vec![
            aiaas_llm::ToolSpec {
                name: "get_weather".into(),
                description: "Current weather in a city".into(),
                parameters: serde_json::json!({"type": "object", "properties": {
                    "city": {"type": "string", "maxLength": 40},
                    "unit": {"enum": ["celsius", "fahrenheit"]}},
                    "required": ["city", "unit"]}),
                strict: true,
            },
            aiaas_llm::ToolSpec {
                name: "get_time".into(),
                description: "Current time in a time zone".into(),
                parameters: serde_json::json!({"type": "object", "properties": {
                    "zone": {"type": "string", "maxLength": 40}}, "required": ["zone"]}),
                strict: false,
            },
        ],
        choice,
        parallel,
    }
}

/// Generate under a tool plan, greedily, and read the reply back; a constrained reply
/// (every call, and every generic reply) must end by itself.
async fn tool_reply(g: &Generator, plan: aiaas_llm::ToolPrompt) -> aiaas_llm::ParsedReply {
    let mut req = greedy(model().tokenize(&plan.prompt).unwrap(), 120);
    let lazy = plan
        .constraint
        .as_ref()
        .is_some_and(|c| c.trigger.is_some());
    req.grammar = plan.constraint;
    let (text, reason, _) = run(g.submit(req).unwrap()).await;
    let reply = plan.syntax.parse(&text);
    if !lazy || !reply.calls.is_empty() {
        assert_eq!(reason, FinishReason::Stop, "{text}");
    }
    reply
}

fn assert_weather_call(call: &aiaas_llm::ToolCall) {
    assert_eq!(call.name, "get_weather", "{call:?}");
    let args: serde_json::Value = serde_json::from_str(&call.arguments).unwrap();
    assert!(
        args["city"].as_str().is_some_and(|c| c.len() <= 40),
        "{args}"
    );
    assert!(
        ["celsius", "fahrenheit"].contains(&args["unit"].as_str().unwrap()),
        "{args}"
    );
}

/// The model's own template knows no tools: the generic syntax, with the whole reply
/// under a grammar. A forced call always parses and follows its schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_tool_calls_parse_and_follow_their_schema() {
    use aiaas_llm::ToolChoice;
    let g = Generator::start(model(), "test", small(2, 8), None).unwrap();
    let ask = [ChatMessage::new(
        "user",
        "What is the weather like in Lisbon?",
    )];
    let named = weather_tools(ToolChoice::Function("get_weather".into()), false);
    let plan = model().render_tool_chat(&ask, &named).unwrap();
    assert_eq!(plan.syntax, aiaas_llm::ToolSyntax::Generic);
    let reply = tool_reply(&g, plan).await;
    assert_eq!(reply.calls.len(), 1, "{reply:?}");
    assert_weather_call(&reply.calls[0]);

    let required = weather_tools(ToolChoice::Required, true);
    let reply = tool_reply(&g, model().render_tool_chat(&ask, &required).unwrap()).await;
    assert!(!reply.calls.is_empty(), "{reply:?}");
    for c in &reply.calls {
        assert!(
            ["get_weather", "get_time"].contains(&c.name.as_str()),
            "{c:?}"
        );
        serde_json::from_str::<serde_json::Value>(&c.arguments).unwrap();
    }

    // `auto`: a call or an answer, never anything else.
    let auto = weather_tools(ToolChoice::Auto, false);
    let chat = [ChatMessage::new("user", "Hello! How are you?")];
    let reply = tool_reply(&g, model().render_tool_chat(&chat, &auto).unwrap()).await;
    assert!(
        reply.calls.len() == 1 || !reply.content.is_empty(),
        "{reply:?}"
    );
}

/// A template that writes Hermes `<tool_call>` blocks (as Qwen's do), on the same
/// weights: forced calls are constrained from the first token, `auto` lazily.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hermes_tool_calls_on_real_weights() {
    use aiaas_llm::{ChatTemplate, ToolChoice};
    const HERMES: &str = "{% if tools %}<|im_start|>system\nYou may call functions.\n<tools>{% for t in tools %}\n{{ t | tojson }}{% endfor %}\n</tools>\nFor each call write <tool_call>\n{\"name\": <name>, \"arguments\": <args>}\n</tool_call><|im_end|>\n{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    let template = ChatTemplate::new(HERMES, "", "<|im_end|>").unwrap();
    let g = Generator::start(model(), "test", small(2, 8), None).unwrap();
    let ask = [ChatMessage::new(
        "user",
        "What is the weather like in Lisbon?",
    )];
    let forced = weather_tools(ToolChoice::Function("get_weather".into()), false);
    let plan = forced.plan(&template, &ask).unwrap();
    assert_eq!(plan.syntax, aiaas_llm::ToolSyntax::Hermes);
    let reply = tool_reply(&g, plan).await;
    assert_eq!(reply.calls.len(), 1, "{reply:?}");
    assert_weather_call(&reply.calls[0]);

    let auto = weather_tools(ToolChoice::Auto, false);
    let plan = auto.plan(&template, &ask).unwrap();
    assert!(plan.constraint.as_ref().unwrap().trigger.is_some());
    let reply = tool_reply(&g, plan).await;
    // Whatever the model chose, each call it opened parsed.
    for c in &reply.calls {
        serde_json::from_str::<serde_json::Value>(&c.arguments).unwrap();
    }
    assert!(
        !reply.calls.is_empty() || !reply.content.is_empty(),
        "{reply:?}"
    );
}

// ---------------------------------------------------------------- speculative decoding

/// Greedy replies are the same tokens with and without speculation, extractive prompts
/// (where the drafts are kept) and free ones alike; so are seeded samples.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speculation_never_changes_the_output() {
    let plain = Generator::start(
        model(),
        "plain",
        GeneratorSettings {
            draft_tokens: 0,
            ..small(2, 8)
        },
        None,
    )
    .unwrap();
    let fast = Generator::start(model(), "fast", small(2, 8), None).unwrap();
    let passage = "The river Tagus rises in the mountains of eastern Spain, crosses the \
                   Iberian plateau from east to west and reaches the Atlantic at Lisbon, \
                   where its estuary forms one of the largest natural harbours in Europe.";
    let prompts = [
        format!("Repeat this text exactly:\n\n{passage}"),
        format!("{passage}\n\nQuote the first sentence of the text above."),
        "Write a short poem about the sea.".to_string(),
        "List the numbers from one to twenty, one per line.".to_string(),
    ];
    for p in &prompts {
        let (a, ra, na) = run(plain.submit(greedy(chat_prompt(p), 120)).unwrap()).await;
        let (b, rb, nb) = run(fast.submit(greedy(chat_prompt(p), 120)).unwrap()).await;
        assert_eq!((&a, ra, na), (&b, rb, nb), "prompt: {p}");
        let seeded = |g: &Generator| {
            let mut req = greedy(chat_prompt(p), 60);
            req.sampling.temperature = 0.8;
            req.sampling.seed = Some(11);
            run(g.submit(req).unwrap())
        };
        assert_eq!(
            seeded(&plain).await,
            seeded(&fast).await,
            "sampled, prompt: {p}"
        );
    }
    let stats = fast.stats();
    assert!(stats.draft_tokens_total > 0, "{stats:?}");
    assert!(
        stats.draft_accepted_total * 3 > stats.draft_tokens_total,
        "quoting keeps most drafts: {stats:?}"
    );
    assert_eq!(plain.stats().draft_tokens_total, 0);
}

#[test]
fn training_examples_read_as_serving_prompts_and_teach_only_the_replies() {
    let m = model();
    let messages = [
        ChatMessage::new("user", "Hi"),
        ChatMessage::new("assistant", "Hello! How can I help?"),
        ChatMessage::new("user", "What is 2+2?"),
        ChatMessage::new("assistant", "It is 4."),
    ];
    let (ids, learn) = m
        .chat_example_tokens(&messages, &[false, true, false, true])
        .unwrap();
    assert_eq!(ids.len(), learn.len());
    // What serving reads for the last turn is where the example begins.
    let prompt = m.tokenize(&m.render_chat(&messages[..3]).unwrap()).unwrap();
    assert_eq!(&ids[..prompt.len()], &prompt[..]);
    assert!(learn[prompt.len()] && !learn[prompt.len() - 1]);
    let taught: String = ids
        .iter()
        .zip(&learn)
        .filter(|(_, l)| **l)
        .map(|(&t, _)| m.token_text(t))
        .collect();
    assert_eq!(taught.trim(), "Hello! How can I help?\nIt is 4.");
    // Each reply's end-of-turn token is taught: the model learns to stop.
    let end = m.tokenize("<|im_end|>").unwrap();
    assert_eq!(end.len(), 1);
    let taught_ends = ids
        .iter()
        .zip(&learn)
        .filter(|(&t, &l)| l && t == end[0])
        .count();
    assert_eq!(taught_ends, 2);
    // A reply with weight 0 is read, not taught.
    let (_, learn) = m
        .chat_example_tokens(&messages, &[false, false, false, true])
        .unwrap();
    let (_, all) = m
        .chat_example_tokens(&messages, &[false, true, false, true])
        .unwrap();
    assert!(learn.iter().filter(|l| **l).count() < all.iter().filter(|l| **l).count());
    assert!(m
        .chat_example_tokens(&messages, &[true, false, false, false])
        .is_err());

    let (ids, learn) = m.completion_example_tokens("2 + 2 =", " 4").unwrap();
    let prompt = m.tokenize("2 + 2 =").unwrap();
    assert_eq!(&ids[..prompt.len()], &prompt[..]);
    assert!(learn[..prompt.len()].iter().all(|l| !l));
    assert!(learn[prompt.len()..].iter().all(|l| *l));
    assert_eq!(m.token_text(ids[ids.len() - 2]).trim(), "4");
}
