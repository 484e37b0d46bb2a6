//! Structured file edits (JSON pointer, TOML dotted key, line regex) as pure
//! functions from old text to new text, and the unified diff between them.
//! Applying an edit twice gives the same text (edits are idempotent).
//!
//! No I/O here: `plan` shows the diff, the engine writes the file.

use regex::Regex;
use serde_json::Value;

/// Sets every pointer to its value; missing parent objects are created.
pub(crate) fn json(text: &str, entries: &[(String, Value)]) -> Result<String, String> {
    let mut document: Value = serde_json::from_str(text).map_err(|error| format!("the file is not JSON: {error}"))?;
    for (pointer, value) in entries {
        set_pointer(&mut document, pointer, value.clone())?;
    }
    let indent = detect_indent(text);
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(&document, &mut serializer).map_err(|error| error.to_string())?;
    let mut out = String::from_utf8(out).map_err(|error| error.to_string())?;
    if text.ends_with('\n') {
        out.push('\n');
    }
    // Unchanged content stays byte-for-byte what it was.
    let reparsed: Value = serde_json::from_str(text).map_err(|error| error.to_string())?;
    let edited: Value = serde_json::from_str(&out).map_err(|error| error.to_string())?;
    Ok(if reparsed == edited { text.to_owned() } else { out })
}

fn set_pointer(document: &mut Value, pointer: &str, value: Value) -> Result<(), String> {
    if pointer.is_empty() {
        *document = value;
        return Ok(());
    }
    let tokens: Vec<String> =
        pointer.split('/').skip(1).map(|token| token.replace("~1", "/").replace("~0", "~")).collect();
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

/// Sets every dotted key, keeping the file's comments and layout.
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
        let new = to_toml(value)?;
        let unchanged = table.get(last).and_then(|item| item.as_value()).is_some_and(|old| same_toml(old, &new));
        if !unchanged {
            table.insert(last, toml_edit::Item::Value(new));
        }
    }
    Ok(document.to_string())
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
pub(crate) fn lines(text: &str, regex: &Regex, replace: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        match regex.captures(body) {
            Some(captures) => {
                let mut replaced = String::new();
                captures.expand(replace, &mut replaced);
                out.push_str(&replaced);
            }
            None => out.push_str(body),
        }
        out.push_str(newline);
    }
    out
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
    fn toml_edit_keeps_comments() {
        let text = "# app\n[app]\nversion = \"1.0\" # the version\n";
        let edited = toml(text, &[(vec!["app".into(), "version".into()], Value::from("1.1"))]).unwrap();
        assert!(edited.contains("# app") && edited.contains("version = \"1.1\""), "{edited}");
        assert_eq!(toml(text, &[(vec!["app".into(), "version".into()], Value::from("1.0"))]).unwrap(), text);
    }

    #[test]
    fn line_edit_replaces_matching_lines() {
        let regex = Regex::new(r"^version=(.*)$").unwrap();
        assert_eq!(lines("a\nversion=1\n", &regex, "version=2"), "a\nversion=2\n");
    }

    #[test]
    fn diff_names_the_file() {
        let diff = diff("a\n", "b\n", "x.json").unwrap();
        assert!(diff.starts_with("--- a/x.json\n+++ b/x.json\n"), "{diff}");
        assert!(diff.contains("-a\n+b\n"));
    }
}
