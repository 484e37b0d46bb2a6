//! Templates and guards: one minijinja environment, strict about undefined
//! values, that shell-quotes every value interpolated into a `run` string
//! (`{{ x | safe }}` opts out) and renders secret handles as a mask unless the
//! handle carries its value.
//!
//! This module compiles, renders and evaluates; it does not know which names a
//! playbook declares (that is `check`) or what a step means (that is `plan`).

use std::fmt;
use std::sync::{Arc, OnceLock};

use minijinja::value::{Object, Value, ValueKind};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use crate::diagnostic::{Diagnostic, Location};

/// How interpolated values are written into the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quoting {
    /// A shell command: every value is quoted as one shell word.
    Shell,
    /// Anything else (argv elements, paths, file contents): values as they are.
    Plain,
    /// A regex (line edits, `expect.regex`): values match literally.
    Regex,
    /// A regex replacement (`edit.line.replace`): a `$` in a value stays a `$`.
    Replacement,
}

impl Quoting {
    fn name(self) -> &'static str {
        match self {
            Quoting::Shell => "command.sh",
            Quoting::Plain => "text",
            Quoting::Regex => "pattern.re",
            Quoting::Replacement => "line.replace",
        }
    }
}

/// A template string from a playbook, checked to compile.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub(crate) source: String,
    pub(crate) quoting: Quoting,
    pub(crate) location: Option<Location>,
}

/// Why a render failed, with the place in the playbook.
#[derive(Debug)]
pub(crate) struct RenderError {
    pub(crate) message: String,
    pub(crate) location: Option<Location>,
}

impl RenderError {
    pub(crate) fn into_diagnostic(self) -> Diagnostic {
        Diagnostic::error(self.message).at_opt(self.location)
    }
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(f, "{} (at {})", self.message, location.describe()),
            None => f.write_str(&self.message),
        }
    }
}

impl Template {
    pub(crate) fn new(source: &str, quoting: Quoting, location: Option<Location>) -> Template {
        Template { source: source.to_owned(), quoting, location }
    }

    /// True when the text has no `{{`, `{%` or `{#`: rendering returns it as is.
    pub(crate) fn is_literal(&self) -> bool {
        !self.source.contains('{')
    }

    /// Compiles the template and lists the variables it reads (dotted, e.g.
    /// `steps.backup.stdout`).
    pub(crate) fn analyze(&self) -> Result<Vec<String>, Diagnostic> {
        if self.is_literal() {
            return Ok(Vec::new());
        }
        let template = engine()
            .template_from_named_str(self.quoting.name(), &self.source)
            .map_err(|error| self.diagnostic("template syntax error", &error))?;
        let mut names: Vec<String> = template.undeclared_variables(true).into_iter().collect();
        names.sort();
        Ok(names)
    }

    pub(crate) fn render(&self, context: &Value) -> Result<String, RenderError> {
        if self.is_literal() {
            return Ok(self.source.clone());
        }
        engine()
            .template_from_named_str(self.quoting.name(), &self.source)
            .and_then(|template| template.render(context))
            .map_err(|error| RenderError { message: describe_error(&error), location: self.narrow(&error) })
    }

    /// Renders the template keeping the type of its value when the whole text
    /// is one expression (`"{{ workers }}"` gives the number 4, not `"4"`);
    /// any other text renders to a string.
    pub(crate) fn evaluate(&self, context: &Value) -> Result<serde_json::Value, RenderError> {
        if let Some(expression) = self.single_expression()
            && let Ok(compiled) = engine().compile_expression(expression)
            && let Ok(value) = compiled.eval(context)
            && let Ok(json) = to_json(&value)
        {
            return Ok(json);
        }
        // Anything else, and every error (with its place), goes the usual way.
        self.render(context).map(serde_json::Value::String)
    }

    /// The expression inside `{{ … }}` when that is the whole text.
    pub(crate) fn single_expression(&self) -> Option<&str> {
        let inner = self.source.strip_prefix("{{")?.strip_suffix("}}")?;
        let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
        let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner);
        let nested = ["{{", "}}", "{%", "%}", "{#", "#}"].iter().any(|d| inner.contains(d));
        (!nested && !inner.trim().is_empty()).then_some(inner)
    }

    fn diagnostic(&self, what: &str, error: &minijinja::Error) -> Diagnostic {
        Diagnostic::error(format!("{what}: {}", describe_error(error)))
            .at_opt(self.narrow(error))
            .label(error.detail().unwrap_or("here").to_owned())
    }

    /// The location of an error inside the template, when the TOML text holds
    /// the template verbatim (no escapes); else the whole string.
    fn narrow(&self, error: &minijinja::Error) -> Option<Location> {
        let location = self.location.as_ref()?;
        let range = error.range();
        narrow_location(location, &self.source, range)
    }
}

/// Points into a TOML string at `range` of its value when the value stands verbatim in the source.
pub(crate) fn narrow_location(
    location: &Location,
    value: &str,
    range: Option<std::ops::Range<usize>>,
) -> Option<Location> {
    let text = &location.source.text;
    let span = location.span.clone();
    let (Some(raw), Some(range)) = (text.get(span.clone()), range) else {
        return Some(location.clone());
    };
    match raw.find(value) {
        Some(offset) if !value.is_empty() => {
            let start = span.start + offset + range.start.min(value.len());
            let end = (span.start + offset + range.end.min(value.len())).max(start + 1);
            Some(Location::new(&location.source, start..end.min(span.end)))
        }
        _ => Some(location.clone()),
    }
}

/// Finds `name` (a variable) in the template text, for pointing at it.
pub(crate) fn locate_name(template: &Template, name: &str) -> Option<Location> {
    let location = template.location.as_ref()?;
    let first = name.split('.').next().unwrap_or(name);
    let bytes = template.source.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut from = 0;
    while let Some(found) = template.source[from..].find(first) {
        let start = from + found;
        let end = start + first.len();
        let before_ok = start == 0 || !is_ident(bytes[start - 1]) && bytes[start - 1] != b'.';
        let after_ok = end == bytes.len() || !is_ident(bytes[end]);
        if before_ok && after_ok {
            let full = template.source[start..].find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'));
            let full_end = full.map_or(template.source.len(), |n| start + n);
            return narrow_location(location, &template.source, Some(start..full_end.max(end)));
        }
        from = end;
    }
    Some(location.clone())
}

/// A guard: a minijinja expression that decides whether a step runs.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    pub(crate) source: String,
    pub(crate) location: Option<Location>,
    /// The variables it reads, once `analyze` has run.
    names: Arc<OnceLock<Vec<String>>>,
}

impl Guard {
    pub(crate) fn new(source: &str, location: Option<Location>) -> Guard {
        Guard { source: source.to_owned(), location, names: Arc::default() }
    }

    pub(crate) fn analyze(&self) -> Result<Vec<String>, Diagnostic> {
        if let Some(names) = self.names.get() {
            return Ok(names.clone());
        }
        let expression = engine().compile_expression(&self.source).map_err(|error| {
            Diagnostic::error(format!("guard does not compile: {}", describe_error(&error)))
                .at_opt(self.location.as_ref().and_then(|l| narrow_location(l, &self.source, error.range())))
                .label(error.detail().unwrap_or("here").to_owned())
        })?;
        let mut names: Vec<String> = expression.undeclared_variables(true).into_iter().collect();
        names.sort();
        Ok(self.names.get_or_init(|| names).clone())
    }

    /// Evaluates the guard; an error is never taken as `false`.
    pub(crate) fn eval(&self, context: &Value) -> Result<bool, RenderError> {
        engine()
            .compile_expression(&self.source)
            .and_then(|expression| expression.eval(context))
            .map(|value| value.is_true())
            .map_err(|error| RenderError {
                message: format!("guard `{}` cannot be evaluated: {}", self.source, describe_error(&error)),
                location: self.location.clone(),
            })
    }
}

/// minijinja's message without its location suffix (we print our own).
fn describe_error(error: &minijinja::Error) -> String {
    let kind = error.kind().to_string();
    match error.detail() {
        Some(detail) => format!("{kind}: {detail}"),
        None => kind,
    }
}

/// A secret in the template context. Without a value it renders as
/// `<secret:NAME>`; with one (only while `run` executes a command) as the value.
#[derive(Debug)]
pub(crate) struct SecretHandle {
    pub(crate) name: String,
    pub(crate) value: Option<String>,
}

impl SecretHandle {
    pub(crate) fn mask(name: &str) -> String {
        format!("<secret:{name}>")
    }

    fn text(&self) -> String {
        match &self.value {
            Some(value) => value.clone(),
            None => SecretHandle::mask(&self.name),
        }
    }
}

impl Object for SecretHandle {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// A value as text: strings as they are, booleans `true`/`false`, lists and
/// maps as JSON (`["a", true]`), objects as they render themselves.
/// (minijinja alone writes Python's `True`.)
pub(crate) fn display(value: &Value) -> String {
    match value.kind() {
        ValueKind::Bool => if value.is_true() { "true" } else { "false" }.to_owned(),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable if !is_plain_object(value) => {
            to_json(value).map_or_else(|_| value.to_string(), |json| json_text(&json))
        }
        _ => value.to_string(),
    }
}

fn is_plain_object(value: &Value) -> bool {
    value.as_object().is_some_and(|o| o.repr() == minijinja::value::ObjectRepr::Plain)
}

/// JSON with a space after `,` and `:`, as people write it.
fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Array(items) => {
            format!("[{}]", items.iter().map(json_text).collect::<Vec<_>>().join(", "))
        }
        serde_json::Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", serde_json::Value::String(k.clone()), json_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// A template value as data: booleans, numbers, strings, lists and maps keep
/// their type; objects that render as text (versions, secret handles,
/// placeholders) become that text.
pub(crate) fn to_json(value: &Value) -> Result<serde_json::Value, String> {
    if is_plain_object(value) {
        return Ok(serde_json::Value::String(value.to_string()));
    }
    Ok(match value.kind() {
        ValueKind::Undefined => return Err("an undefined value".to_owned()),
        ValueKind::None => serde_json::Value::Null,
        ValueKind::Bool => serde_json::Value::Bool(value.is_true()),
        ValueKind::Number => match value.as_i64() {
            Some(i) => serde_json::Value::from(i),
            None => {
                let f = f64::try_from(value.clone()).map_err(|e| e.to_string())?;
                serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        },
        ValueKind::String => serde_json::Value::String(value.as_str().unwrap_or_default().to_owned()),
        ValueKind::Bytes => {
            serde_json::Value::String(String::from_utf8_lossy(value.as_bytes().unwrap_or_default()).into_owned())
        }
        ValueKind::Seq | ValueKind::Iterable => serde_json::Value::Array(
            value.try_iter().map_err(|e| e.to_string())?.map(|item| to_json(&item)).collect::<Result<_, _>>()?,
        ),
        ValueKind::Map => {
            let mut map = serde_json::Map::new();
            for key in value.try_iter().map_err(|e| e.to_string())? {
                let item = value.get_item(&key).map_err(|e| e.to_string())?;
                map.insert(display(&key), to_json(&item)?);
            }
            serde_json::Value::Object(map)
        }
        _ => serde_json::Value::String(value.to_string()),
    })
}

/// Quotes `text` as one shell word (left bare when that is already safe).
pub(crate) fn shell_quote(text: &str) -> String {
    shell_words::quote(text).into_owned()
}

fn engine() -> &'static Environment<'static> {
    static ENGINE: OnceLock<Environment<'static>> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".sh") {
                AutoEscape::Custom("shell".into())
            } else if name.ends_with(".re") {
                AutoEscape::Custom("regex".into())
            } else if name.ends_with(".replace") {
                AutoEscape::Custom("replacement".into())
            } else {
                AutoEscape::None
            }
        });
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .keep_trailing_newline(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        env.set_formatter(|out, state, value| {
            let text = match value.downcast_object_ref::<SecretHandle>() {
                Some(secret) => secret.text(),
                None if value.is_none() => String::new(),
                None => display(value),
            };
            let quote = matches!(state.auto_escape(), AutoEscape::Custom(name) if name == "shell");
            if quote && !value.is_safe() {
                out.write_str(&shell_quote(&text))?;
            } else if !value.is_safe()
                && let AutoEscape::Custom(name) = state.auto_escape()
                && (name == "regex" || name == "replacement")
            {
                // Values are data here too: they match literally, and a `$` in
                // a value is not a capture group.
                out.write_str(&if name == "regex" { regex::escape(&text) } else { text.replace('$', "$$") })?;
            } else {
                out.write_str(&text)?;
            }
            Ok(())
        });
        env.add_filter("quote", |value: Value| Value::from_safe_string(shell_quote(&display(&value))));
        // `| string` writes booleans and lists as `display` does.
        env.add_filter(
            "string",
            |value: Value| {
                if value.kind() == ValueKind::String { value } else { Value::from(display(&value)) }
            },
        );
        env
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, quoting: Quoting, context: Value) -> String {
        Template::new(source, quoting, None).render(&context).unwrap()
    }

    #[test]
    fn shell_strings_quote_every_value() {
        let context = minijinja::context! { x => "x'; touch pwned; echo '", php => "php" };
        assert_eq!(render("echo {{ x }}", Quoting::Shell, context.clone()), r#"echo 'x'\''; touch pwned; echo '\'''"#);
        assert_eq!(render("{{ php }} -v", Quoting::Shell, context.clone()), "php -v");
        assert_eq!(render("echo {{ x | safe }}", Quoting::Plain, context.clone()), "echo x'; touch pwned; echo '");
        assert_eq!(render("{{ x }}", Quoting::Plain, context), "x'; touch pwned; echo '");
    }

    #[test]
    fn secrets_render_masked_without_a_value() {
        let secret = Value::from_object(SecretHandle { name: "key".into(), value: None });
        let context = minijinja::context! { secrets => minijinja::context! { key => secret } };
        assert_eq!(render("token {{ secrets.key }}", Quoting::Shell, context), "token '<secret:key>'");
    }

    #[test]
    fn undefined_values_are_errors() {
        let template = Template::new("echo {{ nope }}", Quoting::Shell, None);
        assert!(template.render(&minijinja::context! {}).is_err());
        let guard = Guard::new("nope == 1", None);
        assert!(guard.eval(&minijinja::context! {}).is_err());
    }

    #[test]
    fn booleans_lists_and_maps_render_as_people_write_them() {
        let context =
            minijinja::context! { flag => true, list => vec![Value::from(false), Value::from(1), Value::from("a")] };
        assert_eq!(
            render("{{ flag }} {{ not flag }} {{ list }}", Quoting::Plain, context.clone()),
            r#"true false [false, 1, "a"]"#
        );
        assert_eq!(render("{{ flag | string }}", Quoting::Plain, context.clone()), "true");
        assert_eq!(render("{{ {'on': flag} }}", Quoting::Plain, context), r#"{"on": true}"#);
    }

    #[test]
    fn one_expression_keeps_its_type() {
        let context = minijinja::context! { workers => 4, name => "web" };
        let evaluate = |source: &str| Template::new(source, Quoting::Plain, None).evaluate(&context).unwrap();
        assert_eq!(evaluate("{{ workers }}"), serde_json::json!(4));
        assert_eq!(evaluate("{{ workers * 2 > 7 }}"), serde_json::json!(true));
        assert_eq!(evaluate("{{ [workers, name] }}"), serde_json::json!([4, "web"]));
        assert_eq!(evaluate("{{ workers }} workers"), serde_json::json!("4 workers"));
        assert_eq!(evaluate("{{ name }}"), serde_json::json!("web"));
        let secret = Value::from_object(SecretHandle { name: "key".into(), value: None });
        let context = minijinja::context! { secrets => minijinja::context! { key => secret } };
        let json = Template::new("{{ secrets.key }}", Quoting::Plain, None).evaluate(&context).unwrap();
        assert_eq!(json, serde_json::json!("<secret:key>"), "a secret is text, masked here");
    }

    #[test]
    fn values_are_data_in_regexes_and_replacements() {
        let context = minijinja::context! { v => "2.4.7+b", p => "[0-9]+", d => "pa$1" };
        assert_eq!(render("^v{{ v }}$", Quoting::Regex, context.clone()), r"^v2\.4\.7\+b$");
        assert_eq!(render("^{{ p | safe }}$", Quoting::Regex, context.clone()), "^[0-9]+$");
        assert_eq!(render("x=$1 {{ d }}", Quoting::Replacement, context), "x=$1 pa$$1");
    }

    #[test]
    fn analyze_lists_nested_names() {
        let template = Template::new("{{ steps.backup.stdout }} {{ root }}", Quoting::Shell, None);
        assert_eq!(template.analyze().unwrap(), vec!["root".to_owned(), "steps.backup.stdout".to_owned()]);
    }
}
