//! The JSON Schema of the playbook format, generated from the raw types, so
//! editors (Taplo / Even Better TOML) complete and check playbooks.

use crate::raw::{RawEnvironment, RawPlaybook};

/// The schema as pretty JSON with a trailing newline: exactly the text of
/// `schema/playbook.schema.json`.
pub fn playbook_schema() -> String {
    let schema = schemars::schema_for!(RawPlaybook);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}

/// The schema of environment files: exactly `schema/environment.schema.json`.
pub fn environment_schema() -> String {
    let schema = schemars::schema_for!(RawEnvironment);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}
