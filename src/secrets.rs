//! Secrets at run time: resolving each one from its source (environment
//! variable, file, command), and the masker every line of output, every
//! journal record and every error passes through.
//!
//! Values live only in memory, only for `run`, `resume` and `rollback`.

use std::collections::BTreeMap;

use crate::playbook::{Playbook, SecretSource};

/// What replaces a secret's value wherever it would be shown or stored.
pub(crate) const MASK: &str = "********";

/// Resolves every secret. `Err` lists the required ones that are missing.
pub(crate) fn resolve(playbook: &Playbook) -> Result<BTreeMap<String, String>, Vec<String>> {
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    for (name, secret) in &playbook.secrets {
        let found = match &secret.source {
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(value) if !value.is_empty() => Ok(value),
                _ => Err(format!("`{name}`: the environment variable `{var}` is not set")),
            },
            SecretSource::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => Ok(text.trim_end_matches(['\n', '\r']).to_owned()),
                Err(error) => Err(format!(
                    "`{name}`: cannot read `{}`: {}",
                    crate::diagnostic::display_path(path),
                    crate::document::io_reason(&error)
                )),
            },
            SecretSource::Command(argv) => {
                let (program, args) = argv.split_first().expect("check rejects an empty command");
                match duct::cmd(program, args).stdin_null().stderr_null().stdout_capture().unchecked().run() {
                    Ok(output) if output.status.success() => {
                        Ok(String::from_utf8_lossy(&output.stdout).trim_end_matches(['\n', '\r']).to_owned())
                    }
                    Ok(output) => Err(format!("`{name}`: `{program}` failed with {}", output.status)),
                    Err(error) => Err(format!("`{name}`: `{program}` could not start: {error}")),
                }
            }
        };
        match found {
            Ok(value) if !value.is_empty() => {
                values.insert(name.clone(), value);
            }
            Ok(_) if secret.required => missing.push(format!("`{name}`: the value is empty")),
            Err(reason) if secret.required => missing.push(reason),
            _ => {}
        }
    }
    if missing.is_empty() { Ok(values) } else { Err(missing) }
}

/// Replaces every secret value in text with `********`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Masker {
    /// Longest first, so a value that contains another is masked whole.
    values: Vec<String>,
}

impl Masker {
    pub(crate) fn new(values: &BTreeMap<String, String>) -> Masker {
        let mut values: Vec<String> = values.values().filter(|v| !v.is_empty()).cloned().collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Masker { values }
    }

    pub(crate) fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), MASK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_longest_first() {
        let values: BTreeMap<String, String> =
            [("a".to_owned(), "hunter2".to_owned()), ("b".to_owned(), "hunter2-long".to_owned())].into_iter().collect();
        let masker = Masker::new(&values);
        assert_eq!(masker.mask("x hunter2-long y hunter2"), "x ******** y ********");
    }
}
