//! The template context: the one place that decides what `{{ name }}` means
//! (vars, `env`, `secrets`, `version`, `requirements`, `steps`, `step`, `run`,
//! and include parameters), for `plan` and for `run` alike.
//!
//! Secrets enter as handles: masked unless the caller gave values (which only
//! the engine does, to build a command it is about to execute).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use minijinja::value::{Enumerator, Object, ObjectRepr, Serde, Value};

use crate::playbook::{Playbook, Scope};
use crate::select::Selection;
use crate::template::{Quoting, RenderError, SecretHandle, Template};
use crate::version::Version;

/// What a step left for later steps (`steps.<id>.*`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub(crate) struct StepResult {
    pub(crate) stdout: String,
    pub(crate) exit_code: Option<i32>,
    pub(crate) skipped: bool,
}

/// The values templates read.
#[derive(Debug)]
pub(crate) struct Context {
    base: BTreeMap<String, Value>,
    /// `base` plus `steps` as one value, built once: outside includes every
    /// template reads this same value.
    root: Value,
    /// Shared with every context value handed out: later steps see new results
    /// without copying the map (plans have thousands of steps).
    steps: Arc<Steps>,
    /// `step.*`: the step being run, shared the same way.
    current: Arc<CurrentStep>,
    /// `run.*`, shared the same way (`run.resumed` changes on resume).
    run: Arc<RunInfo>,
}

/// What `step.*` says about the step being run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepInfo {
    pub(crate) id: String,
    /// 1 for the first try; one more for each retry, and for each time a
    /// crash interrupted the step before.
    pub(crate) attempt: u32,
    /// An earlier try of this step was interrupted (a crash, a signal).
    pub(crate) interrupted: bool,
}

/// `step.*`: unset outside steps (checks, probes), where `check` refuses it.
#[derive(Debug, Default)]
struct CurrentStep(RwLock<Option<StepInfo>>);

impl Object for CurrentStep {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let info = self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let info = info.as_ref()?;
        Some(match key.as_str()? {
            "id" => Value::from(info.id.as_str()),
            "attempt" => Value::from(info.attempt),
            "interrupted" => Value::from(info.interrupted),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["id", "attempt", "interrupted"])
    }
}

/// `run.*`: the run's id and start, and whether this process resumed it.
#[derive(Debug)]
struct RunInfo {
    id: String,
    started_at: String,
    resumed: std::sync::atomic::AtomicBool,
}

impl Object for RunInfo {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "id" => Value::from(self.id.as_str()),
            "started_at" => Value::from(self.started_at.as_str()),
            "resumed" => Value::from(self.resumed.load(std::sync::atomic::Ordering::Relaxed)),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["id", "started_at", "resumed"])
    }
}

/// `steps.*`: a live view of the results so far.
#[derive(Debug, Default)]
struct Steps(RwLock<BTreeMap<String, Value>>);

impl Object for Steps {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let map = self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key.as_str()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let map = self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        Enumerator::Values(map.keys().map(|k| Value::from(k.as_str())).collect())
    }
}

impl Context {
    /// The context of a playbook on one target (a host of its fleet, or `local`):
    /// that host's variables, and `host.*`, `hosts`.
    pub(crate) fn on(
        playbook: &Playbook,
        target: &str,
        selection: Option<&Selection>,
        secret_values: Option<&BTreeMap<String, String>>,
        run: (&str, &str),
    ) -> Context {
        let mut base = BTreeMap::new();
        let host = playbook.inventory.as_ref().and_then(|inventory| inventory.host(target));
        let vars = host.map_or(&playbook.vars, |h| &h.vars);
        for (key, value) in vars {
            base.insert(key.clone(), Value::from(Serde(value)));
        }
        base.insert("vars".to_owned(), Value::from(Serde(vars)));
        let all: Vec<String> = match &playbook.inventory {
            Some(inventory) => inventory.hosts.iter().map(|h| h.name.clone()).collect(),
            None => vec![crate::playbook::LOCAL.to_owned()],
        };
        let info = match host {
            Some(host) => crate::vars::HostInfo {
                name: host.name.clone(),
                address: host.destination.display(),
                roles: host.roles.clone(),
                all: all.clone(),
            },
            None => crate::vars::HostInfo { all: all.clone(), ..crate::vars::HostInfo::local() },
        };
        base.insert("host".to_owned(), info.value());
        base.insert("hosts".to_owned(), Value::from(all));
        let mut env = BTreeMap::new();
        env.insert("name", Value::from(playbook.environment.clone().unwrap_or_default()));
        base.insert("env".to_owned(), Value::from(env));
        let secrets: BTreeMap<String, Value> = playbook
            .secrets
            .keys()
            .map(|name| {
                let value = secret_values.and_then(|values| values.get(name).cloned());
                (name.clone(), Value::from_object(SecretHandle { name: name.clone(), value }))
            })
            .collect();
        base.insert("secrets".to_owned(), Value::from(secrets));
        if let Some(selection) = selection {
            let mut version = BTreeMap::new();
            version.insert("current", Value::from_object(VersionValue(selection.current.clone())));
            version.insert("target", Value::from_object(VersionValue(selection.target.clone())));
            version.insert("change", Value::from(selection.change));
            version.insert("scheme", Value::from(Serde(selection.scheme)));
            version.insert(
                "candidates",
                Value::from(selection.candidates.iter().map(|v| v.to_string()).collect::<Vec<_>>()),
            );
            base.insert("version".to_owned(), Value::from(version));
            base.insert("requirements".to_owned(), Value::from(Serde(&selection.requirements)));
        } else {
            base.insert("requirements".to_owned(), Value::from(BTreeMap::<String, Value>::new()));
        }
        let run = Arc::new(RunInfo {
            id: run.0.to_owned(),
            started_at: run.1.to_owned(),
            resumed: std::sync::atomic::AtomicBool::new(false),
        });
        base.insert("run".to_owned(), Value::from_dyn_object(run.clone()));
        let current: Arc<CurrentStep> = Arc::default();
        base.insert("step".to_owned(), Value::from_dyn_object(current.clone()));
        let steps: Arc<Steps> = Arc::default();
        let mut root = base.clone();
        root.insert("steps".to_owned(), Value::from_dyn_object(steps.clone()));
        Context { base, root: Value::from(root), steps, current, run }
    }

    /// Says which step is being run, and which try of it (`step.*`).
    pub(crate) fn set_current_step(&mut self, info: StepInfo) {
        *self.current.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(info);
    }

    /// `run.resumed`: true while a process that did not start the run goes on with it.
    pub(crate) fn set_resumed(&mut self, resumed: bool) {
        self.run.resumed.store(resumed, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn set_step(&mut self, id: &str, result: &StepResult) {
        self.insert_step(id, Value::from(Serde(result)));
    }

    fn insert_step(&mut self, id: &str, value: Value) {
        let mut map = self.steps.0.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(id.to_owned(), value);
    }

    /// Marks a step whose results only `run` will know: reading them gives a placeholder.
    pub(crate) fn set_step_unknown(&mut self, id: &str) {
        self.insert_step(id, Value::from_object(crate::template::Later(format!("steps.{id}"))));
    }

    /// The context as seen inside `scope` (include parameters rendered in their parent scopes).
    pub(crate) fn value(&self, scope: Option<&Arc<Scope>>) -> Result<Value, RenderError> {
        let Some(scope) = scope else {
            return Ok(self.root.clone());
        };
        let mut map = self.base.clone();
        map.insert("steps".to_owned(), Value::from_dyn_object(self.steps.clone()));
        self.apply_scope(scope, &mut map)?;
        Ok(Value::from(map))
    }

    fn apply_scope(&self, scope: &Arc<Scope>, map: &mut BTreeMap<String, Value>) -> Result<(), RenderError> {
        if let Some(parent) = &scope.parent {
            self.apply_scope(parent, map)?;
        }
        let parent_context = Value::from(map.clone());
        for (key, value) in &scope.params {
            let rendered = render_value(value, &parent_context, Some(&scope.location))?;
            if let Some(kind) = scope.kinds.get(key) {
                match crate::vars::Kind::of_json(&rendered) {
                    Some(given) if kind.accepts(given) => {}
                    given => {
                        return Err(RenderError {
                            message: format!(
                                "parameter `{key}` is {}, and its value renders to {} (`{}`)",
                                kind.described(),
                                given.map_or("null", crate::vars::Kind::described),
                                crate::template::display(&Value::from(Serde(&rendered)))
                            ),
                            location: Some(scope.location.clone()),
                        });
                    }
                }
            }
            map.insert(key.clone(), Value::from(Serde(&rendered)));
        }
        Ok(())
    }
}

/// Renders every string inside a JSON value as a plain template; a string
/// that is one expression (`"{{ workers }}"`) keeps its value's type.
pub(crate) fn render_value(
    value: &serde_json::Value,
    context: &Value,
    location: Option<&crate::diagnostic::Location>,
) -> Result<serde_json::Value, RenderError> {
    Ok(match value {
        serde_json::Value::String(text) => Template::new(text, Quoting::Plain, location.cloned()).evaluate(context)?,
        serde_json::Value::Array(items) => serde_json::Value::Array(
            items.iter().map(|item| render_value(item, context, location)).collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, context, location)?)))
                .collect::<Result<_, RenderError>>()?,
        ),
        other => other.clone(),
    })
}

/// A version in templates: renders as its text, with `.major` … `.stability`.
#[derive(Debug)]
struct VersionValue(Version);

impl Object for VersionValue {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let v = &self.0;
        Some(match key.as_str()? {
            "major" => Value::from(v.major()),
            "minor" => Value::from(v.minor()),
            "patch" => Value::from(v.patch()),
            "patch_level" => Value::from(v.patch_level()),
            "stability" => Value::from(v.stability()),
            "text" => Value::from(v.to_string()),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["major", "minor", "patch", "patch_level", "stability", "text"])
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
