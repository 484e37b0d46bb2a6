//! Structured file edits (JSON pointer, TOML dotted key, line regex) as pure
//! functions from old text to new text, and the unified diff between them.
//! Applying an edit twice gives the same text (edits are idempotent).
//!
//! No I/O here: `plan` shows the diff, the engine writes the file.

use regex::Regex;
use serde_json::Value;

use crate::playbook::Missing;

/// Sets every pointer to its value, changing only the bytes of that value
/// (or inserting one member), so the file keeps its layout as Composer's own
/// JSON manipulator does. Missing parent objects are created; where a splice
/// is not possible the document is written out again, pretty, with the file's
/// indentation.
pub(crate) fn json(text: &str, entries: &[(String, Value)]) -> Result<String, String> {
    let mut expected: Value = serde_json::from_str(text).map_err(|error| format!("the file is not JSON: {error}"))?;
    let mut typed = Vec::with_capacity(entries.len());
    for (pointer, value) in entries {
        // Text set where the file has a number or a boolean keeps the file's type.
        let value = match expected.pointer(pointer) {
            Some(old) => keep_type(kind_of_json(old), value, pointer)?,
            None => value.clone(),
        };
        set_pointer(&mut expected, pointer, value.clone())?;
        typed.push((pointer.clone(), value));
    }
    let entries = typed.as_slice();
    let mut out = text.to_owned();
    for (pointer, value) in entries {
        match splice(&out, &tokens(pointer), value) {
            Some(spliced) => out = spliced,
            None => return pretty(text, &expected),
        }
    }
    // The splice must mean exactly what the structured edit means.
    match serde_json::from_str::<Value>(&out) {
        Ok(parsed) if parsed == expected => Ok(out),
        _ => pretty(text, &expected),
    }
}

fn pretty(text: &str, document: &Value) -> Result<String, String> {
    let original: Value = serde_json::from_str(text).map_err(|error| error.to_string())?;
    if original == *document {
        return Ok(text.to_owned());
    }
    let indent = detect_indent(text);
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(document, &mut serializer).map_err(|error| error.to_string())?;
    let mut out = String::from_utf8(out).map_err(|error| error.to_string())?;
    if text.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

fn tokens(pointer: &str) -> Vec<String> {
    pointer.split('/').skip(1).map(|token| token.replace("~1", "/").replace("~0", "~")).collect()
}

/// The text with the value at `tokens` replaced (or, for a missing last key
/// of an existing object, inserted). `None` when that cannot be done in place.
fn splice(text: &str, tokens: &[String], value: &Value) -> Option<String> {
    let new = serde_json::to_string(value).ok()?;
    let (last, parents) = tokens.split_last()?;
    let bytes = text.as_bytes();
    let mut scanner = Scanner { bytes, pos: 0 };
    scanner.ws();
    let mut at = scanner.pos;
    for token in parents {
        at = Scanner { bytes, pos: at }.member(token)?.1;
    }
    let mut parent = Scanner { bytes, pos: at };
    match parent.member(last) {
        Some((_, start, end)) => {
            if text[start..end] == new {
                return Some(text.to_owned());
            }
            Some(format!("{}{new}{}", &text[..start], &text[end..]))
        }
        None => {
            // Insert a member at the end of an object, indented like its siblings.
            if bytes.get(at) != Some(&b'{') {
                return None;
            }
            let mut scan = Scanner { bytes, pos: at };
            let (close, last_end, indent) = scan.object_end()?;
            let key = serde_json::to_string(last).ok()?;
            Some(match last_end {
                Some(last_end) => format!("{},{indent}{key}: {new}{}", &text[..last_end], &text[last_end..]),
                None => format!("{}{key}: {new}{}", &text[..close], &text[close..]),
            })
        }
    }
}

/// A JSON scanner that finds byte ranges; it trusts that the text parsed.
struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn ws(&mut self) {
        while self.bytes.get(self.pos).is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// Skips a string, returning its decoded text.
    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        if self.bytes.get(self.pos) != Some(&b'"') {
            return None;
        }
        self.pos += 1;
        while let Some(&b) = self.bytes.get(self.pos) {
            self.pos += 1;
            match b {
                b'\\' => self.pos += 1,
                b'"' => return serde_json::from_slice(&self.bytes[start..self.pos]).ok(),
                _ => {}
            }
        }
        None
    }

    /// Skips any value.
    fn value(&mut self) -> Option<()> {
        self.ws();
        match self.bytes.get(self.pos)? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                let mut depth = 0usize;
                while let Some(&b) = self.bytes.get(self.pos) {
                    match b {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
                None
            }
            _ => {
                while self.bytes.get(self.pos).is_some_and(|b| !b",}] \t\r\n".contains(b)) {
                    self.pos += 1;
                }
                Some(())
            }
        }
    }

    /// In the object or array at `pos`: the member `token` as (key start, value start, value end).
    fn member(&mut self, token: &str) -> Option<(usize, usize, usize)> {
        self.ws();
        match self.bytes.get(self.pos)? {
            b'{' => {
                self.pos += 1;
                loop {
                    self.ws();
                    if self.bytes.get(self.pos)? == &b'}' {
                        return None;
                    }
                    let key_start = self.pos;
                    let key = self.string()?;
                    self.ws();
                    if self.bytes.get(self.pos)? != &b':' {
                        return None;
                    }
                    self.pos += 1;
                    self.ws();
                    let start = self.pos;
                    self.value()?;
                    if key == token {
                        return Some((key_start, start, self.pos));
                    }
                    self.ws();
                    if self.bytes.get(self.pos)? == &b',' {
                        self.pos += 1;
                    }
                }
            }
            b'[' => {
                let index: usize = token.parse().ok()?;
                self.pos += 1;
                for i in 0.. {
                    self.ws();
                    if self.bytes.get(self.pos)? == &b']' {
                        return None;
                    }
                    let start = self.pos;
                    self.value()?;
                    if i == index {
                        return Some((start, start, self.pos));
                    }
                    self.ws();
                    if self.bytes.get(self.pos)? == &b',' {
                        self.pos += 1;
                    }
                }
                None
            }
            _ => None,
        }
    }

    /// For the object at `pos`: its closing brace, the end of its last member
    /// (if any), and the whitespace that precedes its members.
    fn object_end(&mut self) -> Option<(usize, Option<usize>, String)> {
        self.pos += 1;
        let mut last_end = None;
        let mut indent = None;
        loop {
            let before = self.pos;
            self.ws();
            if self.bytes.get(self.pos)? == &b'}' {
                let indent = indent.unwrap_or_else(|| " ".to_owned());
                return Some((self.pos, last_end, indent));
            }
            if indent.is_none() {
                indent = Some(String::from_utf8_lossy(&self.bytes[before..self.pos]).into_owned());
            }
            self.string()?;
            self.ws();
            self.pos += 1; // ':'
            self.value()?;
            last_end = Some(self.pos);
            self.ws();
            if self.bytes.get(self.pos)? == &b',' {
                self.pos += 1;
            }
        }
    }
}

fn set_pointer(document: &mut Value, pointer: &str, value: Value) -> Result<(), String> {
    if pointer.is_empty() {
        *document = value;
        return Ok(());
    }
    let tokens = tokens(pointer);
    let (last, parents) = tokens.split_last().ok_or_else(|| format!("`{pointer}` is not a JSON pointer"))?;
    let mut current = document;
    for token in parents {
        current = match current {
            Value::Object(map) => map.entry(token.clone()).or_insert_with(|| Value::Object(Default::default())),
            Value::Array(items) => {
                let index: usize =
                    token.parse().map_err(|_| format!("`{pointer}`: `{token}` is not an array index"))?;
                items.get_mut(index).ok_or_else(|| format!("`{pointer}`: index {index} is out of range"))?
            }
            _ => {
                return Err(format!("`{pointer}`: `{token}` is inside a value that is not an object or array"));
            }
        };
    }
    match current {
        Value::Object(map) => {
            map.insert(last.clone(), value);
        }
        Value::Array(items) if last == "-" => items.push(value),
        Value::Array(items) => {
            let index: usize = last.parse().map_err(|_| format!("`{pointer}`: `{last}` is not an array index"))?;
            *items.get_mut(index).ok_or_else(|| format!("`{pointer}`: index {index} is out of range"))? = value;
        }
        _ => return Err(format!("`{pointer}`: the parent is not an object or array")),
    }
    Ok(())
}

fn detect_indent(text: &str) -> String {
    text.lines()
        .find_map(|line| {
            let indent: String = line.chars().take_while(|c| *c == ' ' || *c == '\t').collect();
            (!indent.is_empty()).then_some(indent)
        })
        .unwrap_or_else(|| "    ".to_owned())
}

/// Sets every dotted key, keeping the file's comments, layout and value types:
/// a replaced value keeps the whitespace and comments around it, and text set
/// where the file has a number or a boolean is read as one.
pub(crate) fn toml(text: &str, entries: &[(Vec<String>, Value)]) -> Result<String, String> {
    let mut document: toml_edit::DocumentMut =
        text.parse().map_err(|error: toml_edit::TomlError| format!("the file is not TOML: {}", error.message()))?;
    for (path, value) in entries {
        let (last, parents) = path.split_last().ok_or("an empty key")?;
        let mut table = document.as_table_mut() as &mut dyn toml_edit::TableLike;
        for key in parents {
            let item = table.entry(key).or_insert(toml_edit::Item::Table(toml_edit::Table::new()));
            table = item.as_table_like_mut().ok_or_else(|| format!("`{}`: `{key}` is not a table", path.join(".")))?;
        }
        match table.get_mut(last).and_then(toml_edit::Item::as_value_mut) {
            Some(old) => {
                let value = keep_type(kind_of_toml(old), value, &path.join("."))?;
                let mut new = to_toml(&value)?;
                if !same_toml(old, &new) {
                    *new.decor_mut() = old.decor().clone();
                    *old = new;
                }
            }
            None => {
                table.insert(last, toml_edit::Item::Value(to_toml(value)?));
            }
        }
    }
    Ok(document.to_string())
}

/// The scalar types a file's value can have that text may be read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Integer,
    Float,
    Boolean,
    Other,
}

fn kind_of_json(value: &Value) -> Scalar {
    match value {
        Value::Number(n) if n.is_f64() => Scalar::Float,
        Value::Number(_) => Scalar::Integer,
        Value::Bool(_) => Scalar::Boolean,
        _ => Scalar::Other,
    }
}

fn kind_of_toml(value: &toml_edit::Value) -> Scalar {
    match value {
        toml_edit::Value::Integer(_) => Scalar::Integer,
        toml_edit::Value::Float(_) => Scalar::Float,
        toml_edit::Value::Boolean(_) => Scalar::Boolean,
        _ => Scalar::Other,
    }
}

/// `value` as the type the file has (`old`) when `value` is text; any other
/// value is set as it is.
fn keep_type(old: Scalar, value: &Value, key: &str) -> Result<Value, String> {
    let Value::String(text) = value else {
        return Ok(value.clone());
    };
    let trimmed = text.trim();
    let read = match old {
        Scalar::Other => return Ok(value.clone()),
        Scalar::Integer => trimmed.parse::<i64>().ok().map(Value::from),
        Scalar::Float => trimmed.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number),
        Scalar::Boolean => match trimmed {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
    };
    let name = match old {
        Scalar::Integer => "an integer",
        Scalar::Float => "a number",
        _ => "a boolean",
    };
    read.ok_or_else(|| format!("`{key}` is {name} in the file, and `{text}` is not"))
}

fn same_toml(a: &toml_edit::Value, b: &toml_edit::Value) -> bool {
    let plain = |v: &toml_edit::Value| {
        let mut v = v.clone();
        v.decor_mut().clear();
        v.to_string()
    };
    plain(a) == plain(b)
}

fn to_toml(value: &Value) -> Result<toml_edit::Value, String> {
    Ok(match value {
        Value::String(s) => s.as_str().into(),
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or(0.0).into(),
        },
        Value::Array(items) => {
            let mut array = toml_edit::Array::new();
            for item in items {
                array.push(to_toml(item)?);
            }
            toml_edit::Value::Array(array)
        }
        Value::Object(map) => {
            let mut table = toml_edit::InlineTable::new();
            for (key, item) in map {
                table.insert(key, to_toml(item)?);
            }
            toml_edit::Value::InlineTable(table)
        }
        Value::Null => return Err("TOML has no null".to_owned()),
    })
}

/// Every line that `regex` matches becomes `replace` (`$1` refers to a group).
/// When no line matches, `missing` decides: an error, `replace` as a new last
/// line (which must match `regex`, or the edit would add it on every run), or
/// no change.
pub(crate) fn lines(text: &str, regex: &Regex, replace: &str, missing: Missing) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut matched = false;
    for line in text.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        match regex.captures(body) {
            Some(captures) => {
                matched = true;
                let mut replaced = String::new();
                captures.expand(replace, &mut replaced);
                out.push_str(&replaced);
            }
            None => out.push_str(body),
        }
        out.push_str(newline);
    }
    if matched {
        return Ok(out);
    }
    match missing {
        Missing::Fail => Err(format!("no line matches `{regex}`")),
        Missing::Ignore => Ok(out),
        Missing::Append => {
            // The replacement read without groups: `$$` is a `$`.
            let mut line = String::new();
            if let Some(captures) = Regex::new("^").ok().and_then(|empty| empty.captures("")) {
                captures.expand(replace, &mut line);
            }
            if !regex.is_match(&line) {
                return Err(format!(
                    "the line to append, `{line}`, does not match `{regex}`: the edit would add it again on every run"
                ));
            }
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&line);
            out.push('\n');
            Ok(out)
        }
    }
}

/// A unified diff, or `None` when the texts are equal.
pub(crate) fn diff(old: &str, new: &str, path: &str) -> Option<String> {
    if old == new {
        return None;
    }
    let diff = similar::TextDiff::from_lines(old, new);
    let (a, b) = if path.starts_with('/') {
        (format!("a{path}"), format!("b{path}"))
    } else {
        (format!("a/{path}"), format!("b/{path}"))
    };
    Some(diff.unified_diff().context_radius(3).header(&a, &b).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_edit_sets_a_pointer_and_keeps_layout() {
        let text = "{\n    \"require\": {\n        \"magento/product-community-edition\": \"2.4.6\"\n    }\n}\n";
        let entries = vec![("/require/magento~1product-community-edition".to_owned(), Value::from("2.4.7"))];
        let edited = json(text, &entries).unwrap();
        assert_eq!(edited, text.replace("2.4.6", "2.4.7"));
        assert_eq!(json(&edited, &entries).unwrap(), edited, "idempotent");
    }

    #[test]
    fn json_edit_changes_only_the_value_it_sets() {
        let text = "{\n  \"require\": { \"acme/store\": \"1.0.0\", \"php\": \">=8.1\" },\n  \"repositories\": [ { \"type\": \"path\" } ]\n}\n";
        let edited = json(text, &[("/require/acme~1store".to_owned(), Value::from("1.1.0"))]).unwrap();
        assert_eq!(edited, text.replace("1.0.0", "1.1.0"));
        let added = json(text, &[("/require/acme~1extra".to_owned(), Value::from("^2"))]).unwrap();
        assert_eq!(added, text.replace("\">=8.1\" }", "\">=8.1\", \"acme/extra\": \"^2\" }"));
        let created = json(text, &[("/config/sort-packages".to_owned(), Value::from(true))]).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&created).unwrap()["config"]["sort-packages"], true);
        let indexed = json(text, &[("/repositories/0/type".to_owned(), Value::from("vcs"))]).unwrap();
        assert_eq!(indexed, text.replace("\"path\"", "\"vcs\""));
    }

    #[test]
    fn toml_edit_keeps_comments_and_types() {
        let text = "# server\n[server]\nworkers = 2  # per core\ndebug = false\nratio = 0.5\nname = \"a\"\n";
        let set = |key: &str, value: Value| toml(text, &[(vec!["server".into(), key.into()], value)]);
        assert_eq!(set("workers", Value::from(4)).unwrap(), text.replace("= 2 ", "= 4 "));
        assert_eq!(set("workers", Value::from("4")).unwrap(), text.replace("= 2 ", "= 4 "), "text read as an integer");
        assert_eq!(set("debug", Value::from("true")).unwrap(), text.replace("false", "true"));
        assert_eq!(set("ratio", Value::from("0.75")).unwrap(), text.replace("0.5", "0.75"));
        assert_eq!(set("name", Value::from("b")).unwrap(), text.replace("\"a\"", "\"b\""));
        assert_eq!(
            set("workers", Value::from("many")).unwrap_err(),
            "`server.workers` is an integer in the file, and `many` is not"
        );
        let added = set("threads", Value::from(8)).unwrap();
        assert!(added.contains("threads = 8"), "{added}");
    }

    #[test]
    fn json_edit_keeps_types() {
        let text = "{\n  \"port\": 8000,\n  \"debug\": true,\n  \"name\": \"x\"\n}\n";
        let edited =
            json(text, &[("/port".to_owned(), Value::from("8080")), ("/debug".to_owned(), Value::from("false"))])
                .unwrap();
        assert_eq!(edited, text.replace("8000", "8080").replace("true", "false"));
        assert!(
            json(text, &[("/port".to_owned(), Value::from("http"))]).unwrap_err().contains("`/port` is an integer")
        );
    }

    #[test]
    fn toml_edit_keeps_comments() {
        let text = "# app\n[app]\nversion = \"1.0\" # the version\n";
        let edited = toml(text, &[(vec!["app".into(), "version".into()], Value::from("1.1"))]).unwrap();
        assert!(edited.contains("# app") && edited.contains("version = \"1.1\""), "{edited}");
        assert_eq!(toml(text, &[(vec!["app".into(), "version".into()], Value::from("1.0"))]).unwrap(), text);
    }

    #[test]
    fn line_edit_replaces_matching_lines() {
        let regex = Regex::new(r"^version=(.*)$").unwrap();
        assert_eq!(lines("a\nversion=1\n", &regex, "version=2", Missing::Fail).unwrap(), "a\nversion=2\n");
        assert_eq!(lines("a\nversion=1\n", &regex, "old=$1", Missing::Fail).unwrap(), "a\nold=1\n");
    }

    #[test]
    fn line_edit_that_matches_nothing_fails_appends_or_ignores() {
        let regex = Regex::new(r"^Django==").unwrap();
        let text = "requests==2.32.3\n";
        assert_eq!(lines(text, &regex, "Django==5.1.4", Missing::Fail), Err("no line matches `^Django==`".to_owned()));
        assert_eq!(lines(text, &regex, "Django==5.1.4", Missing::Ignore).unwrap(), text);
        let appended = lines(text, &regex, "Django==5.1.4", Missing::Append).unwrap();
        assert_eq!(appended, "requests==2.32.3\nDjango==5.1.4\n");
        assert_eq!(lines(&appended, &regex, "Django==5.1.4", Missing::Append).unwrap(), appended, "idempotent");
        assert_eq!(lines("x", &regex, "Django==1", Missing::Append).unwrap(), "x\nDjango==1\n");
        assert_eq!(lines("", &regex, "Django==1", Missing::Append).unwrap(), "Django==1\n");
        let price = Regex::new(r"^PRICE=").unwrap();
        assert_eq!(lines("", &price, "PRICE=$$5", Missing::Append).unwrap(), "PRICE=$5\n");
        let error = lines(text, &regex, "django==5", Missing::Append).unwrap_err();
        assert!(error.contains("would add it again on every run"), "{error}");
    }

    #[test]
    fn diff_names_the_file() {
        let diff = diff("a\n", "b\n", "x.json").unwrap();
        assert!(diff.starts_with("--- a/x.json\n+++ b/x.json\n"), "{diff}");
        assert!(diff.contains("-a\n+b\n"));
    }
}
