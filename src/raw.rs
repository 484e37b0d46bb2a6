//! The raw model: plain structs that mirror the TOML text of a playbook, an
//! include or an environment file, with `toml::Spanned` wherever a later
//! diagnostic must point at the source.
//!
//! Nothing here decides anything. Which action a step has, whether a template
//! compiles or a duration parses is the job of `check`, the only door to the
//! validated model. The JSON Schema of the format is generated from these types,
//! so doc comments here are what editors show.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// A value as written in TOML (a string, number, boolean, array or table).
pub(crate) type RawValue = toml::Value;

/// An upshift playbook (or an included file of steps), format 1.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "upshift playbook", extend("$id" = "https://upshift.invalid/playbook.schema.json"))]
pub(crate) struct RawPlaybook {
    /// The format of this file; always 1.
    #[schemars(with = "u32", range(min = 1, max = 1))]
    pub(crate) format: Option<Spanned<i64>>,
    /// The playbook's name: names its runs and journals. Required in a playbook, absent in an include.
    #[schemars(with = "Option<String>")]
    pub(crate) name: Option<Spanned<String>>,
    /// One line saying what the playbook does.
    pub(crate) description: Option<String>,
    /// The upshift versions this playbook needs, as a semver requirement (`">=0.1"`).
    #[schemars(with = "Option<String>")]
    pub(crate) requires: Option<Spanned<String>>,
    /// Variables with their default values. A variable's type is the TOML type of its value here
    /// (string, integer, float, boolean, array, table): environments, `--var-file` and `--var`
    /// must give a value of that type. Strings are templates that may read other variables and
    /// `env.name`; a string that is one expression (`"{{ workers }}"`) keeps the type of its value.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, serde_json::Value>")]
    pub(crate) vars: IndexMap<String, Spanned<RawValue>>,
    /// Parameters of an include file, with their defaults (whose types `with` must match); only in included files.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, serde_json::Value>")]
    pub(crate) params: IndexMap<String, Spanned<RawValue>>,
    /// Secrets: resolved only by `run`, never printed, never stored.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, RawSecret>")]
    pub(crate) secrets: IndexMap<String, Spanned<RawSecret>>,
    /// How the current and target versions are found and chosen.
    #[schemars(with = "Option<RawVersion>")]
    pub(crate) version: Option<Spanned<RawVersion>>,
    /// When `run` may start: off-peak windows.
    #[schemars(with = "Option<RawWindow>")]
    pub(crate) window: Option<Spanned<RawWindow>>,
    /// Readiness checks: read-only commands run by `plan` and `run` before anything changes.
    #[serde(default)]
    #[schemars(with = "Vec<RawCheck>")]
    pub(crate) check: Vec<Spanned<RawCheck>>,
    /// The steps, in order.
    #[serde(default)]
    #[schemars(with = "Vec<RawStep>")]
    pub(crate) step: Vec<Spanned<RawStep>>,
    /// Steps that run after success, and after a rollback.
    #[serde(default)]
    #[schemars(with = "Vec<RawStep>")]
    pub(crate) finally: Vec<Spanned<RawStep>>,
}

/// Where a secret's value comes from. Exactly one of `env`, `file`, `command`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecret {
    /// The environment variable holding the value.
    pub(crate) env: Option<String>,
    /// A file holding the value (trailing newline trimmed); relative to the playbook's directory.
    pub(crate) file: Option<String>,
    /// A command whose standard output is the value (argv, no shell).
    pub(crate) command: Option<Vec<String>>,
    /// A missing required secret stops `run` before anything changes (default true).
    pub(crate) required: Option<bool>,
}

/// Version selection.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVersion {
    /// `"semver"` (default), `"composer"`, `"pep440"` or `"npm"`: whose rules order and match versions.
    #[schemars(with = "Option<VersionScheme>")]
    pub(crate) scheme: Option<Spanned<String>>,
    /// How to read the installed version.
    #[schemars(with = "Option<RawProbe>")]
    pub(crate) current: Option<Spanned<RawProbe>>,
    /// How to list the versions that can be installed.
    #[schemars(with = "Option<RawProbe>")]
    pub(crate) available: Option<Spanned<RawProbe>>,
    /// The requirement the chosen version must satisfy (`"~2.4"`); may be a template (`"{{ line }}"`).
    #[schemars(with = "Option<String>")]
    pub(crate) target: Option<Spanned<String>>,
    /// Allow a change of major version.
    pub(crate) allow_major: Option<bool>,
    /// Allow choosing a version older than the current one.
    pub(crate) allow_downgrade: Option<bool>,
    /// Consider pre-releases (alpha, beta, RC, dev) as each scheme's library does when asked.
    pub(crate) allow_prerelease: Option<bool>,
    /// Requirement rows: the first whose `versions` matches the target is merged into `requirements`.
    #[serde(default)]
    #[schemars(with = "Vec<RawMatrixRow>")]
    pub(crate) matrix: Vec<Spanned<RawMatrixRow>>,
    /// In a fleet: the host the probes run on (default: the first host).
    #[schemars(with = "Option<String>")]
    pub(crate) on: Option<Spanned<String>>,
}

/// The version schemes.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum VersionScheme {
    /// Semantic Versioning, as the `semver` crate reads it (plus two-part `6.4`).
    Semver,
    /// Composer's order and constraints (composer/semver), which Magento relies on.
    Composer,
    /// Python's PEP 440, as the `packaging` library orders and matches it.
    Pep440,
    /// npm's node-semver: `^`, `~`, x-ranges, hyphen ranges, `||`.
    Npm,
}

/// A read-only source of one or more versions: a command (`run` or `exec`) with
/// `regex` or `json` (or neither: plain text, one version per line for
/// `available`, the whole output for `current`), or a literal `value` / `list`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProbe {
    /// A shell command (template) whose output holds the version(s).
    #[schemars(with = "Option<String>")]
    pub(crate) run: Option<Spanned<String>>,
    /// An argv (templates) whose output holds the version(s).
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) exec: Option<Vec<Spanned<String>>>,
    /// Working directory of the command (template).
    #[schemars(with = "Option<String>")]
    pub(crate) cwd: Option<Spanned<String>>,
    /// A regex; the first capture group (or the whole match) of each match is a version.
    #[schemars(with = "Option<String>")]
    pub(crate) regex: Option<Spanned<String>>,
    /// A JSON pointer into the command's output: a string, or an array of strings.
    #[schemars(with = "Option<String>")]
    pub(crate) json: Option<Spanned<String>>,
    /// A literal version (template).
    #[schemars(with = "Option<String>")]
    pub(crate) value: Option<Spanned<String>>,
    /// A literal list of versions.
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) list: Option<Vec<Spanned<String>>>,
}

/// One row of the requirement matrix.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatrixRow {
    /// A version requirement, in the playbook's scheme.
    #[schemars(with = "String")]
    pub(crate) versions: Spanned<String>,
    /// Values merged into `requirements.*`.
    #[serde(default)]
    pub(crate) set: IndexMap<String, String>,
}

/// Maintenance windows.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWindow {
    /// An IANA time zone name (`"Europe/Berlin"`); default UTC.
    #[schemars(with = "Option<String>")]
    pub(crate) timezone: Option<Spanned<String>>,
    /// Windows as `"DAY HH:MM-HH:MM"`; a window may cross midnight.
    #[schemars(with = "Vec<String>")]
    pub(crate) allow: Vec<Spanned<String>>,
}

/// A readiness check.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    /// What is checked (template).
    #[schemars(with = "String")]
    pub(crate) name: Spanned<String>,
    /// A shell command (template, values shell-quoted).
    #[schemars(with = "Option<String>")]
    pub(crate) run: Option<Spanned<String>>,
    /// An argv (templates, no shell).
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) exec: Option<Vec<Spanned<String>>>,
    /// The shell for `run` (default `sh`).
    #[schemars(with = "Option<String>")]
    pub(crate) shell: Option<Spanned<String>>,
    /// What passes; default: exit code 0.
    #[schemars(with = "Option<RawExpect>")]
    pub(crate) expect: Option<Spanned<RawExpect>>,
    /// Shown when the check fails (template).
    #[schemars(with = "Option<String>")]
    pub(crate) hint: Option<Spanned<String>>,
    /// A guard: the check is skipped when false.
    #[schemars(with = "Option<String>")]
    pub(crate) when: Option<Spanned<String>>,
    /// Working directory (template).
    #[schemars(with = "Option<String>")]
    pub(crate) cwd: Option<Spanned<String>>,
    /// Environment variables (values are templates).
    #[serde(default)]
    #[schemars(with = "IndexMap<String, String>")]
    pub(crate) env: IndexMap<String, Spanned<String>>,
    /// How long the check may take (`"30s"`; default 60s).
    #[schemars(with = "Option<String>")]
    pub(crate) timeout: Option<Spanned<String>>,
    /// Where it runs, in a fleet: a host, a role, a list of them, or `"local"`. Default: every host.
    #[schemars(with = "Option<RawTargetsSchema>")]
    pub(crate) on: Option<Spanned<RawValue>>,
}

/// What a readiness check's output must show. All given conditions must hold.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExpect {
    /// The exit code (default 0).
    pub(crate) exit: Option<i32>,
    /// A regex the standard output must match (template; interpolated values match literally, `| safe` splices a pattern).
    #[schemars(with = "Option<String>")]
    pub(crate) regex: Option<Spanned<String>>,
    /// Text the standard output must contain (template).
    #[schemars(with = "Option<String>")]
    pub(crate) contains: Option<Spanned<String>>,
    /// The standard output, trimmed, must equal this (template).
    #[schemars(with = "Option<String>")]
    pub(crate) equals: Option<Spanned<String>>,
    /// A semver requirement (template) the leading version in the output must satisfy.
    #[schemars(with = "Option<String>")]
    pub(crate) semver: Option<Spanned<String>>,
    /// The first number in the output must be at least this: a number, or a template that renders to one.
    #[schemars(with = "Option<NumberOrTemplate>")]
    pub(crate) min: Option<Spanned<RawValue>>,
    /// The first number in the output must be at most this: a number, or a template that renders to one.
    #[schemars(with = "Option<NumberOrTemplate>")]
    pub(crate) max: Option<Spanned<RawValue>>,
}

/// A number, or a template (`"{{ min_free_kib }}"`) that renders to one.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum NumberOrTemplate {
    /// A number.
    Number(f64),
    /// A template that renders to a number.
    Template(String),
}

/// A step. Exactly one action: `run`, `exec`, `edit`, `template`, `pause` or `include`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    /// Unique id: `[a-z0-9][a-z0-9_-]*`.
    #[schemars(with = "String", regex(pattern = r"^[a-z0-9][a-z0-9_-]*$"))]
    pub(crate) id: Option<Spanned<String>>,
    /// What the step does, for people (template).
    #[schemars(with = "Option<String>")]
    pub(crate) name: Option<Spanned<String>>,
    /// A shell command (template; interpolated values are shell-quoted, `| safe` splices raw text).
    #[schemars(with = "Option<String>")]
    pub(crate) run: Option<Spanned<String>>,
    /// An argv; each element is a template; no shell.
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) exec: Option<Vec<Spanned<String>>>,
    /// A structured edit of an existing file.
    #[schemars(with = "Option<RawEdit>")]
    pub(crate) edit: Option<Spanned<RawEdit>>,
    /// Render a file from a template.
    #[schemars(with = "Option<RawTemplate>")]
    pub(crate) template: Option<Spanned<RawTemplate>>,
    /// A message; the run waits for a person's yes (or `--yes` / `--approve ID`).
    #[schemars(with = "Option<String>")]
    pub(crate) pause: Option<Spanned<String>>,
    /// Another TOML file of steps, relative to this file.
    #[schemars(with = "Option<String>")]
    pub(crate) include: Option<Spanned<String>>,
    /// Parameters for the include (values are templates of this file, of the types the parameters' defaults have).
    #[serde(default)]
    #[schemars(with = "IndexMap<String, serde_json::Value>")]
    pub(crate) with: IndexMap<Spanned<String>, Spanned<RawValue>>,
    /// The shell for `run` (default `sh`).
    #[schemars(with = "Option<String>")]
    pub(crate) shell: Option<Spanned<String>>,
    /// A guard (minijinja expression); false skips the step.
    #[schemars(with = "Option<String>")]
    pub(crate) when: Option<Spanned<String>>,
    /// Skip the step when this path exists (template).
    #[schemars(with = "Option<String>")]
    pub(crate) creates: Option<Spanned<String>>,
    /// Working directory (template).
    #[schemars(with = "Option<String>")]
    pub(crate) cwd: Option<Spanned<String>>,
    /// Environment variables for the command (values are templates).
    #[serde(default)]
    #[schemars(with = "IndexMap<String, String>")]
    pub(crate) env: IndexMap<String, Spanned<String>>,
    /// How long the step may take (`"90s"`, `"30m"`).
    #[schemars(with = "Option<String>")]
    pub(crate) timeout: Option<Spanned<String>>,
    /// How many times to retry a failed command.
    pub(crate) retries: Option<u32>,
    /// How long to wait between retries (`"5s"`).
    #[schemars(with = "Option<String>")]
    pub(crate) retry_delay: Option<Spanned<String>>,
    /// How to undo the step: a shell string, a table with one action and its own `when`, or `false`.
    #[schemars(with = "Option<RawRollback>")]
    pub(crate) rollback: Option<Spanned<RawRollback>>,
    /// May the step run again after a crash interrupted it?
    pub(crate) idempotent: Option<bool>,
    /// Safe to execute during `plan`; its output is then known in the plan.
    pub(crate) read_only: Option<bool>,
    /// A failure is recorded and the run goes on.
    pub(crate) continue_on_error: Option<bool>,
    /// Where it runs, in a fleet: a host, a role, a list of them, or `"local"`
    /// (the machine upshift runs on). Default: every host.
    #[schemars(with = "Option<RawTargetsSchema>")]
    pub(crate) on: Option<Spanned<RawValue>>,
    /// Run on the first targeted host only, once per run (`setup:upgrade`, reindex, cron).
    pub(crate) once: Option<bool>,
    /// On an `include` step: roll the included steps over the hosts in batches of
    /// this many hosts (a number, or a percentage such as `"25%"`).
    #[schemars(with = "Option<RawCountSchema>")]
    pub(crate) serial: Option<Spanned<RawValue>>,
}

/// A structured edit. `path` plus exactly one of `json`, `toml`, `line`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEdit {
    /// The file to edit (template).
    #[schemars(with = "String")]
    pub(crate) path: Spanned<String>,
    /// JSON pointer → value (string values are templates).
    #[schemars(with = "Option<IndexMap<String, serde_json::Value>>")]
    pub(crate) json: Option<IndexMap<Spanned<String>, Spanned<RawValue>>>,
    /// Dotted TOML key → value (string values are templates).
    #[schemars(with = "Option<IndexMap<String, serde_json::Value>>")]
    pub(crate) toml: Option<IndexMap<Spanned<String>, Spanned<RawValue>>>,
    /// Replace lines matching a regex.
    #[schemars(with = "Option<RawLineEdit>")]
    pub(crate) line: Option<Spanned<RawLineEdit>>,
}

/// A line edit: every line matching `regex` becomes `replace` (with `$1` groups).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLineEdit {
    /// The regex each line is matched against (template; interpolated values match literally, `| safe` splices a pattern).
    #[schemars(with = "String")]
    pub(crate) regex: Spanned<String>,
    /// The line that replaces a matching line (template; `$1` refers to a capture group, `$$` is a `$`; a `$` in an interpolated value stays a `$`).
    #[schemars(with = "String")]
    pub(crate) replace: Spanned<String>,
    /// What to do when no line matches: `"fail"` (default: the step fails), `"append"` (add `replace` as a new last line) or `"ignore"`.
    #[schemars(with = "Option<LineMissing>")]
    pub(crate) missing: Option<Spanned<String>>,
}

/// What a line edit does when no line matches.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum LineMissing {
    /// The step fails (`plan` says "cannot apply: no line matches").
    Fail,
    /// `replace` is added as a new last line; it must then match `regex`, so the edit stays idempotent.
    Append,
    /// Nothing changes.
    Ignore,
}

/// Render `src` (a template file beside the playbook) to `dest`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTemplate {
    /// The template file, relative to the playbook.
    #[schemars(with = "String")]
    pub(crate) src: Spanned<String>,
    /// Where to write it (template).
    #[schemars(with = "String")]
    pub(crate) dest: Spanned<String>,
    /// Octal file mode (`"0644"`).
    #[schemars(with = "Option<String>", regex(pattern = r"^0?[0-7]{3,4}$"))]
    pub(crate) mode: Option<Spanned<String>>,
}

/// How to undo a step.
#[derive(Debug)]
pub(crate) enum RawRollback {
    /// A shell string.
    Run(String),
    /// `false`: the step cannot be undone (`true` is rejected by `check`).
    Bool(bool),
    /// A table with one action.
    Table(Box<RawRollbackTable>),
}

/// A rollback with one action (`run`, `exec`, `edit`, `template`) and its own guard.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRollbackTable {
    /// A shell command (template).
    #[schemars(with = "Option<String>")]
    pub(crate) run: Option<Spanned<String>>,
    /// An argv (templates).
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) exec: Option<Vec<Spanned<String>>>,
    /// A structured edit.
    #[schemars(with = "Option<RawEdit>")]
    pub(crate) edit: Option<Spanned<RawEdit>>,
    /// Render a file.
    #[schemars(with = "Option<RawTemplate>")]
    pub(crate) template: Option<Spanned<RawTemplate>>,
    /// A guard: undo only when this holds.
    #[schemars(with = "Option<String>")]
    pub(crate) when: Option<Spanned<String>>,
    /// The shell for `run`.
    #[schemars(with = "Option<String>")]
    pub(crate) shell: Option<Spanned<String>>,
    /// Working directory (template).
    #[schemars(with = "Option<String>")]
    pub(crate) cwd: Option<Spanned<String>>,
    /// Environment variables (templates).
    #[serde(default)]
    #[schemars(with = "IndexMap<String, String>")]
    pub(crate) env: IndexMap<String, Spanned<String>>,
    /// How long the rollback may take.
    #[schemars(with = "Option<String>")]
    pub(crate) timeout: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawRollback {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawRollback;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a shell string, a table with one action, or `false`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawRollback, E> {
                Ok(RawRollback::Run(v.to_owned()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawRollback, E> {
                Ok(RawRollback::Bool(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawRollback, A::Error> {
                let table = RawRollbackTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawRollback::Table(Box::new(table)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for RawRollback {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RawRollback".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let table = generator.subschema_for::<RawRollbackTable>();
        schemars::json_schema!({
            "description": "How to undo the step: a shell string, a table with one action, or `false` (cannot be undone).",
            "anyOf": [
                { "type": "string" },
                { "const": false },
                table,
            ]
        })
    }
}

/// An upshift environment file: `environments/NAME.toml` beside a playbook.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "upshift environment", extend("$id" = "https://upshift.invalid/environment.schema.json"))]
pub(crate) struct RawEnvironment {
    /// Values of the playbook's vars (of the types the playbook declares), and variables of this
    /// environment's own that templates read. Strings are templates, as in the playbook.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, serde_json::Value>")]
    pub(crate) vars: IndexMap<Spanned<String>, Spanned<RawValue>>,
    /// Sources of the playbook's secrets, and of secrets of this environment's own that templates read.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, RawSecret>")]
    pub(crate) secrets: IndexMap<Spanned<String>, Spanned<RawSecret>>,
    /// Overrides the playbook's window.
    #[schemars(with = "Option<RawWindow>")]
    pub(crate) window: Option<Spanned<RawWindow>>,
    /// The hosts of a fleet, in order (`[hosts.web1]`). Without hosts, every step runs
    /// on the machine upshift runs on.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, RawHost>")]
    pub(crate) hosts: IndexMap<Spanned<String>, Spanned<RawHost>>,
    /// How the hosts are reached through OpenSSH.
    #[schemars(with = "Option<RawSsh>")]
    pub(crate) ssh: Option<Spanned<RawSsh>>,
    /// How a step runs over the hosts.
    #[schemars(with = "Option<RawFleet>")]
    pub(crate) fleet: Option<Spanned<RawFleet>>,
}

/// A host of the fleet.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHost {
    /// `user@address[:port]`, or a `Host` alias of the ssh_config.
    #[schemars(with = "String")]
    pub(crate) ssh: Spanned<String>,
    /// Roles, for `on = "web"`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub(crate) roles: Vec<Spanned<String>>,
    /// Values of variables on this host: above the environment's, below `--var-file` and `--var`.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, serde_json::Value>")]
    pub(crate) vars: IndexMap<Spanned<String>, Spanned<RawValue>>,
    /// Where upshift keeps its lock and run marker on the host (default `.upshift`
    /// in the ssh user's home).
    #[schemars(with = "Option<String>")]
    pub(crate) state_dir: Option<Spanned<String>>,
}

/// How hosts are reached.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSsh {
    /// An ssh_config to use instead of the user's own (`-F`), relative to this file.
    #[schemars(with = "Option<String>")]
    pub(crate) config: Option<Spanned<String>>,
    /// A known_hosts file (`UserKnownHostsFile`), relative to this file. Host keys are always checked.
    #[schemars(with = "Option<String>")]
    pub(crate) known_hosts: Option<Spanned<String>>,
    /// How long connecting may take (`"10s"`, the default).
    #[schemars(with = "Option<String>")]
    pub(crate) connect_timeout: Option<Spanned<String>>,
}

/// How steps run over the hosts.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFleet {
    /// Hosts at once within one step (default 10).
    #[schemars(with = "Option<u32>")]
    pub(crate) parallel: Option<Spanned<i64>>,
    /// Hosts that may fail before the run stops and rolls back: a count or `"10%"` (default 0).
    #[schemars(with = "Option<RawCountSchema>")]
    pub(crate) max_fail: Option<Spanned<RawValue>>,
}

/// `on`: one name or a list of names.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum RawTargetsSchema {
    One(String),
    Many(Vec<String>),
}

/// A count of hosts: a number, or a percentage such as `"25%"`.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum RawCountSchema {
    Count(u32),
    Percent(String),
}
