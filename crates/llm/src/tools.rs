//! Tool calling: how a conversation with function tools is prompted, how the reply is
//! constrained so that a call always parses and its arguments follow the tool's schema,
//! and how calls are read back out of the reply.
//!
//! Two syntaxes, chosen per model from what its chat template does (`TemplateCaps`):
//! - **Hermes** (templates that render `tools` and write `<tool_call>` blocks: Hermes,
//!   Qwen 2.5/3, SmolLM3): the template gets the tools and the conversation as they are;
//!   the model writes `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`. With
//!   `tool_choice: auto` the grammar is lazy: free text until the model opens a
//!   `<tool_call>`, then the call is constrained (as llama.cpp's server does).
//! - **Generic** (every other template): the tools and the reply format go into the
//!   system turn, and the whole reply is one JSON object, always constrained:
//!   `{"tool_calls": [{"name": ..., "arguments": {...}}]}` or, with `auto`,
//!   `{"response": "text"}`. Earlier calls and tool results are written into the
//!   conversation in the same JSON (`tool_calls`, `tool_responses`), so any template
//!   renders them. This is the format of llama.cpp's server for templates without tool
//!   support.

use serde_json::{json, Value};

use crate::{json_schema_grammar, ChatMessage, ChatTemplate, LlmError, ToolCall};

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON schema of the arguments object.
    pub parameters: Value,
    /// OpenAI's `strict`: the arguments must follow the schema. Every call is decoded
    /// under its schema's grammar, so strict or not, they do.
    pub strict: bool,
}

/// OpenAI's `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// Never call: the tools are not shown to the model.
    None,
    /// Text or calls, as the model decides.
    #[default]
    Auto,
    /// At least one call.
    Required,
    /// A call of this function.
    Function(String),
}

/// The tools of a chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRequest {
    pub tools: Vec<ToolSpec>,
    pub choice: ToolChoice,
    /// More than one call in a reply.
    pub parallel: bool,
}

/// How calls are written in a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolSyntax {
    Generic,
    Hermes,
}

/// A grammar (GBNF, root rule `root`) the reply follows: from its start, or, with a
/// trigger, from where the trigger pattern's first group matches (a lazy grammar; the
/// pattern must match the whole text generated so far).
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    pub gbnf: String,
    pub trigger: Option<String>,
}

impl Constraint {
    /// A grammar applied from the first token.
    pub fn always(gbnf: String) -> Constraint {
        Constraint {
            gbnf,
            trigger: None,
        }
    }
}

/// A rendered tool conversation: the prompt, the reply's constraint, and how to read it.
#[derive(Debug, Clone)]
pub struct ToolPrompt {
    pub prompt: String,
    pub constraint: Option<Constraint>,
    pub syntax: ToolSyntax,
}

/// A reply read back: its text and its calls (ids given here).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedReply {
    pub content: String,
    pub calls: Vec<ToolCall>,
}

/// Most calls in one reply (small models may otherwise repeat a call until the end).
const MAX_CALLS: usize = 8;

const HERMES_OPEN: &str = "<tool_call>";
const HERMES_CLOSE: &str = "</tool_call>";

impl ToolRequest {
    /// The syntax a template's model calls tools in.
    pub fn syntax_for(template: &ChatTemplate) -> ToolSyntax {
        if template.caps().hermes_calls {
            ToolSyntax::Hermes
        } else {
            ToolSyntax::Generic
        }
    }

    /// The tools the reply may call (all, or the one `tool_choice` names).
    fn callable(&self) -> Result<Vec<&ToolSpec>, LlmError> {
        match &self.choice {
            ToolChoice::Function(name) => {
                let tool = self.tools.iter().find(|t| &t.name == name).ok_or_else(|| {
                    LlmError::InvalidRequest(format!(
                        "tool_choice names function {name:?}, which is not among the tools"
                    ))
                })?;
                Ok(vec![tool])
            }
            _ => Ok(self.tools.iter().collect()),
        }
    }

    /// Render the conversation for `template` and build the reply's constraint. Every
    /// tool's schema is turned into a grammar first, so a schema that cannot be is an
    /// error naming its tool.
    pub fn plan(
        &self,
        template: &ChatTemplate,
        messages: &[ChatMessage],
    ) -> Result<ToolPrompt, LlmError> {
        let mut arguments = Vec::with_capacity(self.tools.len());
        for (i, tool) in self.tools.iter().enumerate() {
            let rules = scoped_grammar(&parameters(tool), &format!("t{i}-")).map_err(|e| {
                LlmError::InvalidRequest(format!(
                    "tool {:?}: its parameters cannot be enforced: {e}",
                    tool.name
                ))
            })?;
            arguments.push(rules);
        }
        let callable = self.callable()?;
        let syntax = ToolRequest::syntax_for(template);
        if self.choice == ToolChoice::None {
            // The model is not told of the tools, so it cannot want to call one.
            let messages = match syntax {
                ToolSyntax::Hermes => messages.to_vec(),
                ToolSyntax::Generic => generic_history(messages),
            };
            return Ok(ToolPrompt {
                prompt: template.render(&messages)?,
                constraint: None,
                syntax,
            });
        }
        match syntax {
            ToolSyntax::Hermes => {
                let tools: Vec<Value> = self.tools.iter().map(openai_tool).collect();
                let prompt = template.render_with(messages, Some(&Value::Array(tools)))?;
                Ok(ToolPrompt {
                    prompt,
                    constraint: Some(self.constraint(syntax, &callable, &arguments)?),
                    syntax,
                })
            }
            ToolSyntax::Generic => {
                let mut history = generic_history(messages);
                let instructions = self.generic_instructions(&callable);
                put_instructions(&mut history, &instructions, template.caps().system);
                Ok(ToolPrompt {
                    prompt: template.render(&history)?,
                    constraint: Some(self.constraint(syntax, &callable, &arguments)?),
                    syntax,
                })
            }
        }
    }

    fn generic_instructions(&self, callable: &[&ToolSpec]) -> String {
        let tools: Vec<Value> = callable
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
            .collect();
        let listing = serde_json::to_string_pretty(&tools).unwrap_or_default();
        let call = r#"{"tool_calls": [{"name": "<tool name>", "arguments": {<arguments>}}]}"#;
        let how = match &self.choice {
            ToolChoice::Auto => format!(
                "To call tools, reply {call}. To answer the user, reply {{\"response\": \"<your answer>\"}}."
            ),
            ToolChoice::Function(name) => format!("Call the tool {name:?}: reply {call}."),
            _ => format!("Call one or more of the tools: reply {call}."),
        };
        format!(
            "You can use these tools (their arguments are described by JSON schemas):\n{listing}\n\n\
             Reply with one JSON object and nothing else. {how}"
        )
    }

    /// The grammar of a reply: calls of the callable tools, each `{"name": ..., "arguments":
    /// ...}` with the name first (the order models are trained on; the schema converter
    /// would sort the keys) and the arguments under the tool's own rules; in the generic
    /// syntax with `auto`, an answer `{"response": "..."}` as the other choice.
    fn constraint(
        &self,
        syntax: ToolSyntax,
        callable: &[&ToolSpec],
        arguments: &[String],
    ) -> Result<Constraint, LlmError> {
        let mut rules = String::new();
        let mut alternatives = Vec::new();
        for (i, tool) in self.tools.iter().enumerate() {
            if !callable.iter().any(|t| t.name == tool.name) {
                continue;
            }
            rules.push_str(&arguments[i]);
            rules.push_str(&format!(
                "call-{i} ::= \"{{\" ws \"\\\"name\\\"\" ws \":\" ws \"\\\"{name}\\\"\" ws \",\" ws \"\\\"arguments\\\"\" ws \":\" ws t{i}-root ws \"}}\"\n",
                name = tool.name
            ));
            alternatives.push(format!("call-{i}"));
        }
        rules.push_str(&format!("call ::= {}\n", alternatives.join(" | ")));
        rules.push_str("ws ::= \" \"?\n");
        let more = if self.parallel { MAX_CALLS - 1 } else { 0 };
        let (root, trigger) = match syntax {
            ToolSyntax::Generic => {
                let calls = format!(
                    "\"{{\" ws \"\\\"tool_calls\\\"\" ws \":\" ws \"[\" ws call (ws \",\" ws call){{0,{more}}} ws \"]\" ws \"}}\""
                );
                let root = if self.choice == ToolChoice::Auto {
                    rules.push_str(&scoped_grammar(&json!({"type": "string"}), "answer-")?);
                    format!("{calls} | \"{{\" ws \"\\\"response\\\"\" ws \":\" ws answer-root ws \"}}\"")
                } else {
                    calls
                };
                (root, None)
            }
            ToolSyntax::Hermes => {
                let block = format!("\"{HERMES_OPEN}\\n\" call \"\\n{HERMES_CLOSE}\"");
                let root = format!("{block} (\"\\n\" {block}){{0,{more}}}");
                let trigger = (self.choice == ToolChoice::Auto)
                    .then(|| format!(r"[\s\S]*?({HERMES_OPEN})[\s\S]*"));
                (root, trigger)
            }
        };
        Ok(Constraint {
            gbnf: format!("root ::= {root}\n{rules}"),
            trigger,
        })
    }
}

impl ParsedReply {
    /// A finished reply read back: with tools (`syntax`), its calls parsed out of it;
    /// without, all text.
    pub fn of(text: &str, syntax: Option<ToolSyntax>) -> ParsedReply {
        match syntax {
            Some(syntax) => syntax.parse(text),
            None => ParsedReply {
                content: text.to_string(),
                calls: Vec::new(),
            },
        }
    }
}

impl ToolSyntax {
    /// Read a finished reply: its text and its calls, each given an id.
    pub fn parse(self, text: &str) -> ParsedReply {
        match self {
            ToolSyntax::Generic => parse_generic(text),
            ToolSyntax::Hermes => parse_hermes(text),
        }
    }
}

/// The schema of a tool's arguments (an empty object when it gives none).
fn parameters(tool: &ToolSpec) -> Value {
    match &tool.parameters {
        Value::Null => json!({"type": "object", "properties": {}}),
        p => p.clone(),
    }
}

/// A tool as chat templates expect it (OpenAI's request shape).
fn openai_tool(tool: &ToolSpec) -> Value {
    json!({"type": "function", "function": {"name": tool.name,
        "description": tool.description, "parameters": tool.parameters}})
}

/// A new id for a call, in OpenAI's style.
fn call_id() -> String {
    format!("call_{}", aiaas_types::new_id().replace('-', ""))
}

/// The grammar of a JSON schema with every rule renamed `<prefix><name>`, so that the
/// rules of several schemas live in one grammar (its root is `<prefix>root`). Optional
/// whitespace is one space at most: the converter's allows new lines and indentation,
/// which a model pays for in tokens without changing the JSON.
fn scoped_grammar(schema: &Value, prefix: &str) -> Result<String, LlmError> {
    let gbnf = json_schema_grammar(&schema.to_string())?;
    let names: std::collections::HashSet<&str> = gbnf
        .lines()
        .filter_map(|l| l.split_once(" ::=").map(|(name, _)| name.trim()))
        .collect();
    let mut out = String::new();
    for line in gbnf.lines() {
        let line = if line.starts_with("space ::=") {
            "space ::= \" \"?"
        } else {
            line
        };
        out.push_str(&rename_rules(line, &names, prefix));
        out.push('\n');
    }
    Ok(out)
}

/// `line` with each reference to one of `names` prefixed; literals (`"..."`) and
/// character classes (`[...]`) are copied as they are.
fn rename_rules(line: &str, names: &std::collections::HashSet<&str>, prefix: &str) -> String {
    let mut out = String::with_capacity(line.len() + 32);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '[' => {
                let close = if c == '"' { '"' } else { ']' };
                out.push(c);
                while let Some(d) = chars.next() {
                    out.push(d);
                    if d == '\\' {
                        if let Some(escaped) = chars.next() {
                            out.push(escaped);
                        }
                    } else if d == close {
                        break;
                    }
                }
            }
            c if c.is_ascii_alphanumeric() || c == '-' => {
                let mut word = String::from(c);
                while let Some(&d) = chars.peek() {
                    if !(d.is_ascii_alphanumeric() || d == '-') {
                        break;
                    }
                    word.push(d);
                    chars.next();
                }
                if names.contains(word.as_str()) {
                    out.push_str(prefix);
                }
                out.push_str(&word);
            }
            c => out.push(c),
        }
    }
    out
}

/// The conversation for a template that knows no tools: earlier calls become the
/// assistant's JSON replies, and each run of tool results one user turn.
fn generic_history(messages: &[ChatMessage]) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = Vec::with_capacity(messages.len());
    let mut names = std::collections::HashMap::new();
    let mut results: Vec<Value> = Vec::new();
    let flush = |out: &mut Vec<ChatMessage>, results: &mut Vec<Value>| {
        if !results.is_empty() {
            let body = json!({"tool_responses": std::mem::take(results)});
            out.push(ChatMessage::new("user", &body.to_string()));
        }
    };
    for m in messages {
        if m.role == "tool" {
            let id = m.tool_call_id.clone().unwrap_or_default();
            let name = names.get(&id).cloned().unwrap_or_default();
            results.push(json!({"name": name, "tool_call_id": id, "content": m.content}));
            continue;
        }
        flush(&mut out, &mut results);
        if m.role == "assistant" && !m.tool_calls.is_empty() {
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(|c| {
                    names.insert(c.id.clone(), c.name.clone());
                    let arguments = serde_json::from_str::<Value>(&c.arguments)
                        .unwrap_or_else(|_| Value::String(c.arguments.clone()));
                    json!({"name": c.name, "arguments": arguments})
                })
                .collect();
            out.push(ChatMessage::new(
                "assistant",
                &json!({"tool_calls": calls}).to_string(),
            ));
        } else {
            out.push(ChatMessage::new(&m.role, &m.content));
        }
    }
    flush(&mut out, &mut results);
    out
}

/// Put the tool instructions first in the system turn (added when there is none), or at
/// the top of the first user turn for templates without a system role.
fn put_instructions(messages: &mut Vec<ChatMessage>, text: &str, system_role: bool) {
    match messages.first_mut() {
        Some(first) if first.role == "system" => {
            first.content = format!("{}\n\n{text}", first.content);
        }
        _ if system_role => messages.insert(0, ChatMessage::new("system", text)),
        _ => match messages.iter_mut().find(|m| m.role == "user") {
            Some(user) => user.content = format!("{text}\n\n{}", user.content),
            None => messages.insert(0, ChatMessage::new("user", text)),
        },
    }
}

/// A call object `{"name": ..., "arguments": ...}` with arguments as JSON text.
fn read_call(v: &Value) -> Option<ToolCall> {
    let name = v.get("name")?.as_str()?.to_string();
    let arguments = match v.get("arguments") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "{}".to_string(),
    };
    Some(ToolCall {
        id: call_id(),
        name,
        arguments,
    })
}

fn parse_generic(text: &str) -> ParsedReply {
    let as_text = || ParsedReply {
        content: text.to_string(),
        calls: Vec::new(),
    };
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(text.trim()) else {
        // Cut short (max_tokens): the calls written whole before the cut, else the text.
        let calls = complete_calls(text);
        if calls.is_empty() {
            return as_text();
        }
        return ParsedReply {
            content: String::new(),
            calls: distinct(calls),
        };
    };
    if let Some(Value::Array(calls)) = obj.get("tool_calls") {
        let calls: Option<Vec<ToolCall>> = calls.iter().map(read_call).collect();
        return match calls {
            Some(calls) => ParsedReply {
                content: String::new(),
                calls: distinct(calls),
            },
            None => as_text(),
        };
    }
    match obj.get("response") {
        Some(Value::String(s)) => ParsedReply {
            content: s.clone(),
            calls: Vec::new(),
        },
        _ => as_text(),
    }
}

/// The calls of a `{"tool_calls": [...` reply cut off before its end, each one that was
/// written whole (a small model can repeat a call until `max_tokens` stops it).
fn complete_calls(text: &str) -> Vec<ToolCall> {
    let Some(list) = text
        .find("\"tool_calls\"")
        .and_then(|at| text[at..].find('[').map(|open| at + open + 1))
    else {
        return Vec::new();
    };
    let mut calls = Vec::new();
    let mut rest = &text[list..];
    loop {
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        match values.next() {
            Some(Ok(value)) => match read_call(&value) {
                Some(call) => calls.push(call),
                None => break,
            },
            _ => break, // the cut-off call, or the list's end
        }
        rest = &rest[values.byte_offset()..];
    }
    calls
}

/// The calls without repeats: a call of the same tool with the same arguments as an
/// earlier one in the same reply is a model repeating itself, answered once.
fn distinct(calls: Vec<ToolCall>) -> Vec<ToolCall> {
    let mut out: Vec<ToolCall> = Vec::with_capacity(calls.len());
    for call in calls {
        if !out
            .iter()
            .any(|c| c.name == call.name && c.arguments == call.arguments)
        {
            out.push(call);
        }
    }
    out
}

fn parse_hermes(text: &str) -> ParsedReply {
    let mut content = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(HERMES_OPEN) {
        let after = &rest[start + HERMES_OPEN.len()..];
        let Some(end) = after.find(HERMES_CLOSE) else {
            break; // an unclosed block (cut short) stays text
        };
        let call = serde_json::from_str::<Value>(after[..end].trim())
            .ok()
            .as_ref()
            .and_then(read_call);
        match call {
            Some(c) => {
                content.push_str(&rest[..start]);
                calls.push(c);
            }
            None => content.push_str(&rest[..start + HERMES_OPEN.len() + end + HERMES_CLOSE.len()]),
        }
        rest = &after[end + HERMES_CLOSE.len()..];
    }
    content.push_str(rest);
    ParsedReply {
        content: content.trim().to_string(),
        calls: distinct(calls),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    /// Qwen 2.5's way with tools, shortened.
    const HERMES: &str = "{% if tools %}<|im_start|>system\n# Tools\n<tools>{% for t in tools %}\n{{ t | tojson }}{% endfor %}\n</tools>\nCall with <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call><|im_end|>\n{% endif %}{% for m in messages %}{% if m.role == 'assistant' and m.tool_calls %}<|im_start|>assistant\n{% for c in m.tool_calls %}<tool_call>\n{\"name\": \"{{ c.function.name }}\", \"arguments\": {{ c.function.arguments | tojson }}}\n</tool_call>{% endfor %}<|im_end|>\n{% elif m.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m.content }}\n</tool_response><|im_end|>\n{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    fn weather() -> ToolSpec {
        ToolSpec {
            name: "get_weather".into(),
            description: "The weather in a city".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}},
                "required": ["city"]}),
            strict: false,
        }
    }

    #[test]
    fn a_reply_cut_off_keeps_its_whole_calls_once() {
        let call = r#"{"name": "get_weather", "arguments": { "city": "Oslo" }}"#;
        let cut = format!(r#"{{ "tool_calls": [{call}, {call}, {{"name": "get_weather", "argu"#);
        let reply = ToolSyntax::Generic.parse(&cut);
        assert_eq!(reply.calls.len(), 1, "{reply:?}");
        assert_eq!(reply.calls[0].name, "get_weather");
        let args: Value = serde_json::from_str(&reply.calls[0].arguments).unwrap();
        assert_eq!(args, json!({"city": "Oslo"}));
        assert!(reply.content.is_empty());
        // Two different calls both stay; a reply with no whole call stays text.
        let other = r#"{"name": "get_weather", "arguments": {"city": "Bergen"}}"#;
        let whole = format!(r#"{{"tool_calls": [{call}, {other}, {call}]}}"#);
        assert_eq!(ToolSyntax::Generic.parse(&whole).calls.len(), 2);
        let nothing = r#"{"tool_calls": [{"name": "get_wea"#;
        let reply = ToolSyntax::Generic.parse(nothing);
        assert!(reply.calls.is_empty() && reply.content == nothing);
    }

    fn request(choice: ToolChoice) -> ToolRequest {
        ToolRequest {
            tools: vec![weather()],
            choice,
            parallel: false,
        }
    }

    fn conversation() -> Vec<ChatMessage> {
        vec![
            ChatMessage::new("user", "Weather in Paris?"),
            ChatMessage {
                role: "assistant".into(),
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into(),
                }],
                ..ChatMessage::default()
            },
            ChatMessage {
                role: "tool".into(),
                content: "sunny, 21 C".into(),
                tool_call_id: Some("call_1".into()),
                ..ChatMessage::default()
            },
        ]
    }

    #[test]
    fn templates_are_probed_for_tools() {
        let plain = ChatTemplate::new(CHATML, "", "").unwrap();
        assert_eq!(ToolRequest::syntax_for(&plain), ToolSyntax::Generic);
        assert!(plain.caps().system && !plain.caps().tools);
        let hermes = ChatTemplate::new(HERMES, "", "").unwrap();
        assert_eq!(ToolRequest::syntax_for(&hermes), ToolSyntax::Hermes);
    }

    #[test]
    fn the_generic_prompt_carries_tools_calls_and_results() {
        let t = ChatTemplate::new(CHATML, "", "").unwrap();
        let plan = request(ToolChoice::Auto).plan(&t, &conversation()).unwrap();
        assert_eq!(plan.syntax, ToolSyntax::Generic);
        let p = &plan.prompt;
        assert!(
            p.starts_with("<|im_start|>system\nYou can use these tools"),
            "{p}"
        );
        assert!(
            p.contains("\"get_weather\"") && p.contains("{\"response\""),
            "{p}"
        );
        assert!(
            p.contains(
                r#"<|im_start|>assistant
{"tool_calls":[{"arguments":{"city":"Paris"},"name":"get_weather"}]}"#
            ) || p.contains(
                r#"{"tool_calls":[{"name":"get_weather","arguments":{"city":"Paris"}}]}"#
            ),
            "{p}"
        );
        assert!(
            p.contains("tool_responses") && p.contains("sunny, 21 C"),
            "{p}"
        );
        let c = plan.constraint.unwrap();
        assert!(c.trigger.is_none() && c.gbnf.contains("root ::="));
        // `none` shows no tools and constrains nothing.
        let none = request(ToolChoice::None).plan(&t, &conversation()).unwrap();
        assert!(!none.prompt.contains("You can use these tools"));
        assert!(none.constraint.is_none());
    }

    #[test]
    fn the_hermes_prompt_is_the_templates_own() {
        let t = ChatTemplate::new(HERMES, "", "").unwrap();
        let plan = request(ToolChoice::Auto).plan(&t, &conversation()).unwrap();
        assert_eq!(plan.syntax, ToolSyntax::Hermes);
        assert!(
            plan.prompt.contains("<tools>{\"function\""),
            "{}",
            plan.prompt
        );
        assert!(
            plan.prompt.contains(
                "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}"
            ),
            "{}",
            plan.prompt
        );
        assert!(plan.prompt.contains("<tool_response>\nsunny, 21 C"));
        let lazy = plan.constraint.unwrap();
        assert!(lazy.trigger.is_some());
        assert!(lazy.gbnf.starts_with("root ::= \"<tool_call>\\n\" call"));
        let forced = request(ToolChoice::Required)
            .plan(&t, &conversation())
            .unwrap();
        assert!(forced.constraint.unwrap().trigger.is_none());
    }

    #[test]
    fn bad_schemas_and_unknown_functions_are_named() {
        let t = ChatTemplate::new(CHATML, "", "").unwrap();
        let mut r = request(ToolChoice::Function("nope".into()));
        let e = r.plan(&t, &conversation()).unwrap_err().to_string();
        assert!(e.contains("\"nope\""), "{e}");
        r.choice = ToolChoice::Auto;
        r.tools[0].parameters =
            json!({"type": "object", "properties": {"x": {"$ref": "#/nowhere"}}});
        let e = r.plan(&t, &conversation()).unwrap_err().to_string();
        assert!(e.contains("tool \"get_weather\""), "{e}");
    }

    #[test]
    fn scoped_rules_keep_literals_and_classes() {
        let names: std::collections::HashSet<&str> = ["root", "char", "space", "city-kv"].into();
        let line = r#"root ::= "{" space city-kv "char" [^"\\x7F] char{0,40} "\"" foo"#;
        assert_eq!(
            rename_rules(line, &names, "t0-"),
            r#"t0-root ::= "{" t0-space t0-city-kv "char" [^"\\x7F] t0-char{0,40} "\"" foo"#
        );
        let g = scoped_grammar(&weather().parameters, "t3-").unwrap();
        assert!(g.contains("t3-root ::= \"{\" t3-space t3-city-kv"), "{g}");
        assert!(g.contains("t3-space ::= \" \"?"), "{g}");
    }

    #[test]
    fn replies_are_read_back() {
        let r = ToolSyntax::Generic
            .parse(r#"{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}"#);
        assert_eq!(r.calls.len(), 1);
        assert_eq!(r.calls[0].name, "get_weather");
        assert_eq!(r.calls[0].arguments, r#"{"city":"Oslo"}"#);
        assert!(r.calls[0].id.starts_with("call_") && r.content.is_empty());
        let r = ToolSyntax::Generic.parse(r#" {"response": "It is sunny."} "#);
        assert_eq!((r.content.as_str(), r.calls.len()), ("It is sunny.", 0));
        let r = ToolSyntax::Generic.parse(r#"{"tool_calls": [{"name": "get_w"#);
        assert_eq!(r.content, r#"{"tool_calls": [{"name": "get_w"#);
        let r = ToolSyntax::Hermes.parse(
            "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>",
        );
        assert_eq!(r.content, "Let me check.");
        assert_eq!(r.calls.len(), 2);
        assert_ne!(r.calls[0].id, r.calls[1].id);
        let r = ToolSyntax::Hermes.parse("<tool_call>\n{\"name\": \"get_weather\", \"argu");
        assert!(r.calls.is_empty() && r.content.starts_with("<tool_call>"));
    }
}
