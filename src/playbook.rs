//! The validated playbook: what `check` produces and everything after it
//! reads. Every template here compiled, every variable it reads is declared,
//! every duration and requirement parsed, includes are expanded. Nothing here
//! can be invalid, and nothing here has been rendered yet.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use regex::Regex;

use crate::diagnostic::{Location, Source};
use crate::template::{Guard, RenderError, Template};
use crate::version::{Requirement, Scheme};

/// A step id: `[a-z0-9][a-z0-9_-]*`, or `outer.inner` for included steps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub(crate) struct StepId(String);

impl StepId {
    pub(crate) fn new(id: String) -> StepId {
        StepId(id)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn is_valid(id: &str) -> bool {
        let mut chars = id.chars();
        chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A checked playbook, bound to one environment and its variables.
#[derive(Debug)]
pub struct Playbook {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) source: Arc<Source>,
    /// The environment's name, if one was chosen.
    pub(crate) environment: Option<String>,
    /// Variables after every override, in declaration order.
    pub(crate) vars: IndexMap<String, serde_json::Value>,
    pub(crate) secrets: IndexMap<String, Secret>,
    pub(crate) version: Option<VersionSpec>,
    pub(crate) window: Option<WindowSpec>,
    pub(crate) checks: Vec<Check>,
    pub(crate) steps: Vec<Step>,
    pub(crate) finally: Vec<Step>,
    /// Hash of every file the playbook was read from.
    pub(crate) fingerprint: String,
    /// The environment's hosts; `None`: everything runs on this machine.
    pub(crate) inventory: Option<Inventory>,
    /// Every file it was read from, each with its own digest (saved plans compare them one by one).
    pub(crate) sources: Vec<SourceDigest>,
}

/// One file a playbook was read from: the playbook, an include, an
/// environment, a var file or a template source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SourceDigest {
    /// `playbook`, `include`, `environment file`, `var file` or `template source`.
    pub(crate) kind: String,
    /// As shown to people (relative to the working directory when possible).
    pub(crate) file: String,
    pub(crate) path: PathBuf,
    /// sha256 of its content, hex.
    pub(crate) sha256: String,
}

impl Playbook {
    /// Every target a step, check or probe of this playbook runs on, `local` first.
    pub(crate) fn target_names(&self) -> Vec<String> {
        let mut names = vec![LOCAL.to_owned()];
        if let Some(inventory) = &self.inventory {
            names.extend(inventory.hosts.iter().map(|h| h.name.clone()));
        }
        names
    }

    /// Was this step written to run once (rather than targeting one host)?
    pub(crate) fn step_is_once(&self, step: &Step) -> bool {
        step.once
    }
}

/// The name of the machine upshift runs on, as a target.
pub(crate) const LOCAL: &str = "local";

/// A fleet: its hosts, how to reach them, how steps run over them.
#[derive(Debug, Clone)]
pub(crate) struct Inventory {
    pub(crate) hosts: Vec<Host>,
    pub(crate) ssh: crate::transport::ssh::SshOptions,
    /// Hosts at once within one step.
    pub(crate) parallel: usize,
    /// Hosts that may fail before the run stops and rolls back.
    pub(crate) max_fail: Count,
}

impl Inventory {
    pub(crate) fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

/// A host of the fleet.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub(crate) name: String,
    pub(crate) destination: crate::transport::ssh::Destination,
    pub(crate) roles: Vec<String>,
    /// The variables on this host: the playbook's, with the host's own values.
    pub(crate) vars: IndexMap<String, serde_json::Value>,
    /// Where upshift keeps its lock and run marker on the host.
    pub(crate) state_dir: String,
}

/// A number of hosts, or a share of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    Hosts(usize),
    Percent(u32),
}

impl Count {
    /// How many of `total` hosts this is (a share rounds down, a batch is at least 1).
    pub(crate) fn of(self, total: usize) -> usize {
        match self {
            Count::Hosts(n) => n,
            Count::Percent(p) => total * p as usize / 100,
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::Hosts(n) => write!(f, "{n}"),
            Count::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Rolling batches: the steps of one `include` with `serial`, run batch by batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    /// The include step's id (the steps sharing it form one rolling group).
    pub(crate) include: String,
    pub(crate) serial: Count,
}

/// Where a secret comes from. Its value is never part of the playbook.
#[derive(Debug, Clone)]
pub(crate) struct Secret {
    pub(crate) source: SecretSource,
    pub(crate) required: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum SecretSource {
    Env(String),
    File(PathBuf),
    Command(Vec<String>),
}

/// The `[version]` table, checked.
#[derive(Debug)]
pub(crate) struct VersionSpec {
    pub(crate) scheme: Scheme,
    pub(crate) current: Probe,
    pub(crate) available: Probe,
    pub(crate) target: Option<Target>,
    pub(crate) allow_major: bool,
    pub(crate) allow_downgrade: bool,
    pub(crate) allow_prerelease: bool,
    pub(crate) matrix: Vec<MatrixRow>,
    /// Where the probes run (a host's name, or `local`).
    pub(crate) on: String,
}

/// `version.target`: a requirement, parsed at validate time, or a template
/// rendered with the vars at plan time and parsed then.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) text: String,
    pub(crate) location: crate::diagnostic::Location,
    pub(crate) template: Template,
    /// The parsed requirement when `text` is not a template.
    pub(crate) requirement: Option<Requirement>,
}

#[derive(Debug)]
pub(crate) struct MatrixRow {
    pub(crate) versions: String,
    pub(crate) requirement: Requirement,
    pub(crate) set: IndexMap<String, String>,
}

/// A read-only source of versions.
#[derive(Debug)]
pub(crate) enum Probe {
    Command { command: Command, cwd: Option<Template>, extract: Extract },
    Value(Template),
    List(Vec<String>),
}

#[derive(Debug)]
pub(crate) enum Extract {
    Regex(Regex),
    JsonPointer(String),
    /// The whole trimmed output (`current` without `regex`/`json`).
    Whole,
    /// One version per non-empty line, trimmed (`available` without `regex`/`json`).
    Lines,
}

/// A command: a shell string or an argv.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    Shell { shell: String, script: Template },
    Exec(Vec<Template>),
}

/// `[window]`, checked.
#[derive(Debug, Clone)]
pub(crate) struct WindowSpec {
    pub(crate) timezone: String,
    pub(crate) allow: Vec<WindowRule>,
}

/// One `"sat 22:00-06:00"` rule; minutes from midnight; `end <= start` crosses midnight.
#[derive(Debug, Clone)]
pub(crate) struct WindowRule {
    pub(crate) text: String,
    /// 0 = Monday … 6 = Sunday.
    pub(crate) weekday: u8,
    pub(crate) start: u16,
    pub(crate) end: u16,
}

/// A readiness check.
#[derive(Debug)]
pub(crate) struct Check {
    pub(crate) name: Template,
    pub(crate) command: Command,
    pub(crate) expect: Expect,
    pub(crate) hint: Option<Template>,
    pub(crate) guard: Option<Guard>,
    pub(crate) cwd: Option<Template>,
    pub(crate) env: Vec<(String, Template)>,
    pub(crate) timeout: Duration,
    /// Where it runs (every targeted host is checked). Never empty.
    pub(crate) targets: Vec<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Expect {
    pub(crate) exit: i32,
    pub(crate) regex: Option<Pattern>,
    pub(crate) contains: Option<Template>,
    pub(crate) equals: Option<Template>,
    pub(crate) semver: Option<Template>,
    pub(crate) min: Option<Bound>,
    pub(crate) max: Option<Bound>,
}

/// A regex: compiled by `check`, or a template compiled once rendered.
#[derive(Debug)]
pub(crate) enum Pattern {
    Fixed(Regex),
    Template(Template),
}

impl Pattern {
    /// The regex, rendered and compiled when it is a template.
    pub(crate) fn regex(&self, context: &minijinja::Value) -> Result<std::borrow::Cow<'_, Regex>, RenderError> {
        match self {
            Pattern::Fixed(regex) => Ok(std::borrow::Cow::Borrowed(regex)),
            Pattern::Template(template) => {
                let text = template.render(context)?;
                Regex::new(&text).map(std::borrow::Cow::Owned).map_err(|error| {
                    let reason = error.to_string();
                    let reason = reason.lines().last().unwrap_or("invalid").trim().to_owned();
                    RenderError {
                        message: format!("`{text}` is not a valid regex: {reason}"),
                        location: template.location.clone(),
                    }
                })
            }
        }
    }
}

/// A numeric bound: a number, or a template that renders to one.
#[derive(Debug)]
pub(crate) enum Bound {
    Fixed(serde_json::Number),
    Template(Template),
}

impl Bound {
    /// The number, rendered when it is a template.
    pub(crate) fn number(&self, context: &minijinja::Value) -> Result<serde_json::Number, RenderError> {
        match self {
            Bound::Fixed(number) => Ok(number.clone()),
            Bound::Template(template) => {
                let value = template.evaluate(context)?;
                let number = match &value {
                    serde_json::Value::Number(number) => Some(number.clone()),
                    serde_json::Value::String(text) => text.trim().parse::<serde_json::Number>().ok(),
                    _ => None,
                };
                number.ok_or_else(|| RenderError {
                    message: format!(
                        "`{}` renders to `{}`, which is not a number",
                        template.source,
                        crate::template::display(&minijinja::Value::from(minijinja::value::Serde(&value)))
                    ),
                    location: template.location.clone(),
                })
            }
        }
    }
}

/// What a line edit does when no line matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    /// The edit fails.
    Fail,
    /// `replace` becomes a new last line.
    Append,
    /// Nothing changes.
    Ignore,
}

/// Parameters an include was given, rendered in the scope around it.
#[derive(Debug)]
pub(crate) struct Scope {
    /// The include step's id: the prefix of the ids inside (`outer` in `outer.inner`).
    pub(crate) id: String,
    pub(crate) parent: Option<Arc<Scope>>,
    /// Values; strings in them are templates of the parent scope.
    pub(crate) params: IndexMap<String, serde_json::Value>,
    /// The type each parameter's default declares, for values only rendering tells.
    pub(crate) kinds: IndexMap<String, crate::vars::Kind>,
    pub(crate) location: Location,
}

/// A step, ready to be planned.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) id: StepId,
    pub(crate) name: Option<Template>,
    pub(crate) action: Action,
    /// Guards of enclosing includes first, each with the scope it is evaluated in.
    pub(crate) guards: Vec<(Guard, Option<Arc<Scope>>)>,
    pub(crate) creates: Option<Template>,
    pub(crate) cwd: Option<Template>,
    pub(crate) env: Vec<(String, Template)>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: u32,
    pub(crate) retry_delay: Duration,
    pub(crate) rollback: Rollback,
    pub(crate) idempotent: bool,
    pub(crate) read_only: bool,
    pub(crate) continue_on_error: bool,
    pub(crate) scope: Option<Arc<Scope>>,
    pub(crate) location: Location,
    /// Where it runs: host names in inventory order, or `local`. Never empty.
    pub(crate) targets: Vec<String>,
    /// Rolling batches of an `include` with `serial`.
    pub(crate) batch: Option<Batch>,
    /// `once = true`: the first targeted host only.
    pub(crate) once: bool,
}

/// What a step does.
#[derive(Debug)]
pub(crate) enum Action {
    Command(Command),
    Edit(Edit),
    Template(FileTemplate),
    Pause(Template),
}

impl Action {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Action::Command(Command::Shell { .. }) => "run",
            Action::Command(Command::Exec(_)) => "exec",
            Action::Edit(_) => "edit",
            Action::Template(_) => "template",
            Action::Pause(_) => "pause",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Edit {
    pub(crate) path: Template,
    pub(crate) kind: EditKind,
}

#[derive(Debug)]
pub(crate) enum EditKind {
    /// JSON pointer → value (strings in values are templates). The pointer
    /// is a template whose values are escaped for it (`~1`, `~0`).
    Json(Vec<(Template, serde_json::Value)>),
    /// Dotted key path → value; each key of the path is a template (a value
    /// with a `.` stays one key).
    Toml(Vec<(Vec<Template>, serde_json::Value)>),
    Line {
        regex: Pattern,
        replace: Template,
        missing: Missing,
    },
}

#[derive(Debug)]
pub(crate) struct FileTemplate {
    /// The template file as given (relative to the playbook).
    pub(crate) src: String,
    pub(crate) content: Template,
    pub(crate) dest: Template,
    pub(crate) mode: Option<u32>,
}

/// How a step is undone.
#[derive(Debug)]
pub(crate) enum Rollback {
    /// Nothing given for a command step: nothing is undone.
    Nothing,
    /// `edit`/`template`: the file is restored from the snapshot taken before.
    Restore,
    /// `rollback = false`: cannot be undone; the point of no return.
    Irreversible,
    /// An action of its own.
    Action {
        action: Box<Action>,
        guard: Option<Guard>,
        cwd: Option<Template>,
        env: Vec<(String, Template)>,
        timeout: Option<Duration>,
    },
}
