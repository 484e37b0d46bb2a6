//! Variables: their types, the layers that set them and the templates among
//! their values. A variable's type is the TOML type of its declaration (in the
//! playbook's `[vars]`, or in the environment that declares it); every layer
//! above (environment `[vars]`, `--var-file`, `--var`) must give a value of
//! that type. String values of the playbook and of environments are templates
//! that may read other variables and `env.name`; once every override is
//! applied they are rendered in dependency order. Values from `--var-file` and
//! `--var` are data, never templates.
//!
//! Given values and places, this module returns values or diagnostics; reading
//! files is `check`'s, and it never runs anything.

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;
use minijinja::value::Value;

use crate::diagnostic::{Diagnostic, Location, did_you_mean};
use crate::raw::RawValue;
use crate::template::{Quoting, Template, locate_name};

/// Context names a variable's template cannot read, and why.
const UNREADABLE: [&str; 6] = ["secrets", "version", "steps", "requirements", "run", "step"];

/// The type of a variable, from the TOML value that declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    Integer,
    Float,
    Boolean,
    Array,
    Table,
}

impl Kind {
    /// The type of a TOML value (a date-time is a string in templates).
    pub(crate) fn of_toml(value: &RawValue) -> Kind {
        match value {
            RawValue::String(_) | RawValue::Datetime(_) => Kind::String,
            RawValue::Integer(_) => Kind::Integer,
            RawValue::Float(_) => Kind::Float,
            RawValue::Boolean(_) => Kind::Boolean,
            RawValue::Array(_) => Kind::Array,
            RawValue::Table(_) => Kind::Table,
        }
    }

    /// The type of a rendered value; `None` for null.
    pub(crate) fn of_json(value: &serde_json::Value) -> Option<Kind> {
        Some(match value {
            serde_json::Value::Null => return None,
            serde_json::Value::Bool(_) => Kind::Boolean,
            serde_json::Value::Number(n) if n.is_f64() => Kind::Float,
            serde_json::Value::Number(_) => Kind::Integer,
            serde_json::Value::String(_) => Kind::String,
            serde_json::Value::Array(_) => Kind::Array,
            serde_json::Value::Object(_) => Kind::Table,
        })
    }

    /// "a string", "an integer", …
    pub(crate) fn described(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Float => "a float",
            Kind::Boolean => "a boolean",
            Kind::Array => "an array",
            Kind::Table => "a table",
        }
    }

    /// May a value of type `given` stand where this type is declared? (An
    /// integer may stand for a float, as in TOML.)
    pub(crate) fn accepts(self, given: Kind) -> bool {
        self == given || (self == Kind::Float && given == Kind::Integer)
    }

    /// A value made to fit this type when it is accepted (an integer where a
    /// float is declared becomes a float).
    pub(crate) fn fit(self, value: serde_json::Value) -> serde_json::Value {
        match (self, &value) {
            (Kind::Float, serde_json::Value::Number(n)) if !n.is_f64() => {
                n.as_f64().and_then(serde_json::Number::from_f64).map_or(value, serde_json::Value::Number)
            }
            _ => value,
        }
    }

    /// Reads `--var NAME=TEXT` as this type: a string as it is, `true`/`false`,
    /// numbers, arrays and tables as TOML values.
    pub(crate) fn parse_flag(self, text: &str) -> Result<serde_json::Value, ()> {
        match self {
            Kind::String => return Ok(serde_json::Value::String(text.to_owned())),
            Kind::Boolean => {
                return match text {
                    "true" => Ok(serde_json::Value::Bool(true)),
                    "false" => Ok(serde_json::Value::Bool(false)),
                    _ => Err(()),
                };
            }
            _ => {}
        }
        let table: toml::Table = toml::from_str(&format!("value = {text}")).map_err(|_| ())?;
        match table.into_iter().collect::<Vec<_>>().as_slice() {
            [(key, value)] if key == "value" && self.accepts(Kind::of_toml(value)) => {
                let json = crate::check::to_json(value);
                if json.is_null() {
                    return Err(());
                }
                Ok(self.fit(json))
            }
            _ => Err(()),
        }
    }

    /// How to write a value of this type on the command line.
    fn example(self, name: &str) -> String {
        match self {
            Kind::String => format!("`--var {name}=TEXT`"),
            Kind::Integer => format!("a whole number, as in `--var {name}=4`"),
            Kind::Float => format!("a number, as in `--var {name}=0.5`"),
            Kind::Boolean => format!("`--var {name}=true` or `--var {name}=false`"),
            Kind::Array => format!("a TOML array, as in `--var '{name}=[\"a\", \"b\"]'`"),
            Kind::Table => format!("a TOML inline table, as in `--var '{name}={{ key = \"value\" }}'`"),
        }
    }
}

/// Where a variable's current value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layer {
    Playbook,
    Environment,
    /// A host's `vars` in a fleet.
    Host,
    VarFile,
    Flag,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Where it is declared.
    declared: Location,
    /// The declared type; `None` for a declaration that is one expression
    /// (`"{{ workers }}"`): its type is that of what it renders to.
    kind: Option<Kind>,
    value: serde_json::Value,
    layer: Layer,
    /// Where the value was set (`None` for `--var`).
    at: Option<Location>,
    /// False for a variable only an environment that is not chosen declares:
    /// known to templates, without a value.
    bound: bool,
}

impl Entry {
    /// Are strings in the value templates?
    fn templated(&self) -> bool {
        matches!(self.layer, Layer::Playbook | Layer::Environment | Layer::Host) && has_template(&self.value)
    }
}

/// Every variable of a playbook, as the layers set them.
#[derive(Debug, Default)]
pub(crate) struct Vars {
    entries: IndexMap<String, Entry>,
    /// The chosen environment's name, for `env.name`.
    env_name: String,
    /// The host these values are for (fleets): `host.*` and `hosts`.
    host: Option<HostInfo>,
    /// Dotted names the variables' templates read (`root`, `vars.root`, `env.name`).
    read: BTreeSet<String>,
    diagnostics: Vec<Diagnostic>,
}

impl Vars {
    pub(crate) fn new(env_name: Option<&str>) -> Vars {
        Vars { env_name: env_name.unwrap_or_default().to_owned(), ..Vars::default() }
    }

    /// Binds the values to one host of a fleet: its templates may read `host.*` and `hosts`.
    pub(crate) fn for_host(&mut self, host: HostInfo) {
        self.host = Some(host);
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Declares a variable with its value (playbook, or an environment's own).
    pub(crate) fn declare(&mut self, name: &str, value: &RawValue, at: Location, layer: Layer, bound: bool) {
        let json = crate::check::to_json(value);
        let one_expression = matches!(value, RawValue::String(text) if is_one_expression(text));
        let kind = (!one_expression).then(|| Kind::of_toml(value));
        self.entries
            .insert(name.to_owned(), Entry { declared: at.clone(), kind, value: json, layer, at: Some(at), bound });
    }

    /// Learns the type of every declaration that is one expression, by
    /// rendering the declarations alone. Call once every variable is declared.
    pub(crate) fn infer_kinds(&mut self) {
        if self.entries.values().all(|e| e.kind.is_some()) {
            return;
        }
        let (values, _) = self.render(true);
        for (name, entry) in &mut self.entries {
            if entry.kind.is_none() {
                entry.kind = values.get(name).and_then(Kind::of_json);
            }
        }
    }

    /// A value from a file (an environment's `[vars]`, a `--var-file`) for a
    /// declared variable. Environment strings are templates; the type of one
    /// that is one expression is checked once rendered.
    pub(crate) fn set_from_file(&mut self, name: &str, value: &RawValue, at: Location, layer: Layer) {
        let Some(entry) = self.entries.get(name) else {
            return;
        };
        let (declared, kind) = (entry.declared.clone(), entry.kind);
        let json = crate::check::to_json(value);
        let templated = matches!(layer, Layer::Environment | Layer::Host) && has_template(&json);
        let deferred = templated && matches!(value, RawValue::String(t) if is_one_expression(t));
        let given = Kind::of_toml(value);
        let json = match kind {
            Some(kind) if !deferred && !kind.accepts(given) => {
                let diagnostic =
                    Diagnostic::error(format!("`{name}` is {}, and this is {}", kind.described(), given.described()))
                        .at(at)
                        .label(format!("{} here", given.described()))
                        .note(format!("`{name}` is declared as {} at {}", kind.described(), declared.describe()));
                self.diagnostics.push(diagnostic);
                return;
            }
            Some(kind) if !deferred => kind.fit(json),
            _ => json,
        };
        let entry = self.entries.get_mut(name).expect("checked above");
        entry.value = json;
        entry.layer = layer;
        entry.at = Some(at);
        entry.bound = true;
    }

    /// `--var NAME=TEXT`, read as the variable's type. The caller has checked
    /// that the name is declared.
    pub(crate) fn set_from_flag(&mut self, name: &str, text: &str) {
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        let kind = entry.kind.unwrap_or(Kind::String);
        match kind.parse_flag(text) {
            Ok(value) => {
                entry.value = value;
                entry.layer = Layer::Flag;
                entry.at = None;
                entry.bound = true;
            }
            Err(()) => {
                let diagnostic = Diagnostic::error(format!(
                    "`--var {name}={text}`: `{name}` is {}, and `{text}` is not",
                    kind.described()
                ))
                .at(entry.declared.clone())
                .label(format!("`{name}` is declared here as {}", kind.described()))
                .help(format!("write {}", kind.example(name)));
                self.diagnostics.push(diagnostic);
            }
        }
    }

    /// Renders every template in dependency order and checks the types of
    /// what they render to. Returns the bound variables' values, in
    /// declaration order, the names the templates read, and every problem.
    pub(crate) fn finish(mut self) -> (IndexMap<String, serde_json::Value>, BTreeSet<String>, Vec<Diagnostic>) {
        let (values, failed) = self.render(false);
        for (name, entry) in &self.entries {
            if !entry.templated() || failed.contains(name) {
                continue;
            }
            let (Some(kind), Some(value)) = (entry.kind, values.get(name)) else {
                continue;
            };
            match Kind::of_json(value) {
                Some(given) if kind.accepts(given) => {}
                given => {
                    let given = given.map_or("null", Kind::described);
                    let mut diagnostic = Diagnostic::error(format!(
                        "`{name}` is {}, and this renders to {given} (`{}`)",
                        kind.described(),
                        crate::template::display(&Value::from(minijinja::value::Serde(value)))
                    ))
                    .at_opt(entry.at.clone())
                    .label(format!("renders to {given}"));
                    if entry.at.as_ref().map(Location::describe) != Some(entry.declared.describe()) {
                        diagnostic = diagnostic.note(format!(
                            "`{name}` is declared as {} at {}",
                            kind.described(),
                            entry.declared.describe()
                        ));
                    }
                    self.diagnostics.push(diagnostic);
                }
            }
        }
        let out = self
            .entries
            .iter()
            .filter(|(name, entry)| entry.bound && values.contains_key(*name))
            .map(|(name, entry)| {
                (name.clone(), entry.kind.map_or_else(|| values[name].clone(), |k| k.fit(values[name].clone())))
            })
            .collect();
        (out, self.read, self.diagnostics)
    }

    /// Renders the templates among the values in dependency order. With
    /// `declared_only`, every variable counts with its declaration (to learn
    /// types); else only bound ones. Returns the values that could be
    /// computed and the names that failed with a reported problem.
    fn render(&mut self, declared_only: bool) -> (IndexMap<String, serde_json::Value>, BTreeSet<String>) {
        let included: Vec<String> =
            self.entries.iter().filter(|(_, e)| declared_only || e.bound).map(|(name, _)| name.clone()).collect();
        let names: BTreeSet<String> = self.entries.keys().cloned().collect();
        // What each template reads.
        let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut failed: BTreeSet<String> = BTreeSet::new();
        for name in &included {
            let entry = &self.entries[name];
            if !entry.templated() {
                continue;
            }
            let (value, at) = (entry.value.clone(), entry.at.clone());
            let (reads, broken) = self.analyze(&value, at, name, &names);
            if broken {
                failed.insert(name.clone());
            }
            deps.insert(name.clone(), reads);
        }
        // Dependency order; a cycle is reported once, at its first variable.
        let mut order: Vec<String> = Vec::new();
        let mut state: BTreeMap<String, Visit> = BTreeMap::new();
        for name in &included {
            let mut path = Vec::new();
            self.visit(name, &deps, &mut state, &mut path, &mut order, &mut failed);
        }
        // Values, rendered in that order.
        let mut values: IndexMap<String, serde_json::Value> = IndexMap::new();
        let mut unknown: BTreeSet<String> = BTreeSet::new();
        for name in &order {
            let entry = &self.entries[name];
            if !(declared_only || entry.bound) {
                unknown.insert(name.clone());
                continue;
            }
            if !entry.templated() {
                values.insert(name.clone(), entry.value.clone());
                continue;
            }
            let needs = deps.get(name).map(Vec::as_slice).unwrap_or_default();
            if failed.contains(name) || needs.iter().any(|d| failed.contains(d)) {
                failed.insert(name.clone());
                continue;
            }
            if needs.iter().any(|d| unknown.contains(d) || !values.contains_key(d)) {
                // Reads a variable only an environment gives: known with `--env`.
                unknown.insert(name.clone());
                continue;
            }
            let context = self.context(&values);
            match render_value(&entry.value, &context, entry.at.clone()) {
                Ok(value) => {
                    values.insert(name.clone(), value);
                }
                Err(diagnostic) => {
                    self.diagnostics.push(diagnostic);
                    failed.insert(name.clone());
                }
            }
        }
        // Keep declaration order.
        let ordered =
            self.entries.keys().filter_map(|name| values.get(name).map(|v| (name.clone(), v.clone()))).collect();
        (ordered, failed)
    }

    /// Checks what the templates in a value read; returns the variables they
    /// depend on and whether a problem was reported.
    fn analyze(
        &mut self,
        value: &serde_json::Value,
        at: Option<Location>,
        owner: &str,
        names: &BTreeSet<String>,
    ) -> (Vec<String>, bool) {
        let mut reads = Vec::new();
        let mut broken = false;
        for template in templates(value, at) {
            match template.analyze() {
                Ok(used) => {
                    for dotted in &used {
                        self.read.insert(dotted.clone());
                        match unreadable(dotted, names) {
                            Some(problem) => {
                                broken = true;
                                self.diagnostics.push(problem.at_opt(locate_name(&template, dotted)));
                            }
                            None => reads.extend(dependency(dotted, names, owner)),
                        }
                    }
                }
                Err(diagnostics) => {
                    broken = true;
                    self.diagnostics.extend(diagnostics);
                }
            }
        }
        reads.sort();
        reads.dedup();
        (reads, broken)
    }

    fn visit(
        &mut self,
        name: &str,
        deps: &BTreeMap<String, Vec<String>>,
        state: &mut BTreeMap<String, Visit>,
        path: &mut Vec<String>,
        order: &mut Vec<String>,
        failed: &mut BTreeSet<String>,
    ) {
        match state.get(name) {
            Some(Visit::Done) => return,
            Some(Visit::Active) => {
                let start = path.iter().position(|p| p == name).unwrap_or(0);
                let cycle: Vec<String> = path[start..].to_vec();
                // Report at the variable declared first, starting the loop there.
                let first = cycle
                    .iter()
                    .min_by_key(|n| self.entries.get_index_of(n.as_str()).unwrap_or(usize::MAX))
                    .cloned()
                    .unwrap_or_else(|| name.to_owned());
                let at = cycle.iter().position(|n| *n == first).unwrap_or(0);
                let mut ring: Vec<String> = cycle[at..].iter().chain(cycle[..at].iter()).cloned().collect();
                ring.push(first.clone());
                let entry = &self.entries[&first];
                self.diagnostics.push(
                    Diagnostic::error(format!(
                        "variables form a cycle: {}",
                        ring.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" → ")
                    ))
                    .at_opt(entry.at.clone())
                    .label("this variable's value depends on itself")
                    .help("give one of them a value that does not read the others"),
                );
                failed.extend(cycle);
                return;
            }
            None => {}
        }
        state.insert(name.to_owned(), Visit::Active);
        path.push(name.to_owned());
        for dep in deps.get(name).cloned().unwrap_or_default() {
            self.visit(&dep, deps, state, path, order, failed);
        }
        path.pop();
        state.insert(name.to_owned(), Visit::Done);
        order.push(name.to_owned());
    }

    /// What a variable's template sees: the variables so far and `env.name`.
    fn context(&self, values: &IndexMap<String, serde_json::Value>) -> Value {
        let mut map: BTreeMap<String, Value> =
            values.iter().map(|(k, v)| (k.clone(), Value::from(minijinja::value::Serde(v)))).collect();
        map.insert("vars".to_owned(), Value::from(minijinja::value::Serde(values)));
        let mut env = BTreeMap::new();
        env.insert("name", Value::from(self.env_name.as_str()));
        map.insert("env".to_owned(), Value::from(env));
        let host = self.host.clone().unwrap_or_else(HostInfo::local);
        map.insert("hosts".to_owned(), Value::from(host.all.clone()));
        map.insert("host".to_owned(), host.value());
        Value::from(map)
    }
}

/// A host as templates see it: `host.name`, `host.address`, `host.roles`, and `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostInfo {
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) roles: Vec<String>,
    /// Every host's name, in inventory order (`hosts`).
    pub(crate) all: Vec<String>,
}

impl HostInfo {
    /// The machine upshift runs on.
    pub(crate) fn local() -> HostInfo {
        HostInfo {
            name: "local".to_owned(),
            address: "localhost".to_owned(),
            roles: Vec::new(),
            all: vec!["local".to_owned()],
        }
    }

    pub(crate) fn value(&self) -> Value {
        let mut host = BTreeMap::new();
        host.insert("name", Value::from(self.name.as_str()));
        host.insert("address", Value::from(self.address.as_str()));
        host.insert("roles", Value::from(self.roles.clone()));
        Value::from(host)
    }
}

/// The fields of `host`.
pub(crate) const HOST_FIELDS: [&str; 3] = ["name", "address", "roles"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    Active,
    Done,
}

/// Is the text exactly one `{{ … }}` expression?
pub(crate) fn is_one_expression(text: &str) -> bool {
    Template::new(text, Quoting::Plain, None).single_expression().is_some()
}

/// Does any string in the value hold template syntax?
fn has_template(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => ["{{", "{%", "{#"].iter().any(|d| text.contains(d)),
        serde_json::Value::Array(items) => items.iter().any(has_template),
        serde_json::Value::Object(map) => map.values().any(has_template),
        _ => false,
    }
}

/// Every template string inside a value.
fn templates(value: &serde_json::Value, at: Option<Location>) -> Vec<Template> {
    let mut out = Vec::new();
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::String(text) if has_template(value) => {
                out.push(Template::new(text, Quoting::Plain, at.clone()));
            }
            serde_json::Value::Array(items) => stack.extend(items.iter().rev()),
            serde_json::Value::Object(map) => stack.extend(map.values().rev()),
            _ => {}
        }
    }
    out
}

/// Renders the strings of a value that hold template syntax, keeping the type
/// of a string that is one expression.
fn render_value(
    value: &serde_json::Value,
    context: &Value,
    at: Option<Location>,
) -> Result<serde_json::Value, Diagnostic> {
    Ok(match value {
        serde_json::Value::String(text) if has_template(value) => {
            Template::new(text, Quoting::Plain, at).evaluate(context).map_err(|e| e.into_diagnostic())?
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(
            items.iter().map(|item| render_value(item, context, at.clone())).collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, context, at.clone())?)))
                .collect::<Result<_, Diagnostic>>()?,
        ),
        other => other.clone(),
    })
}

/// Why a variable's template cannot read `dotted`, if it cannot.
fn unreadable(dotted: &str, names: &BTreeSet<String>) -> Option<Diagnostic> {
    let mut parts = dotted.split('.');
    let first = parts.next().unwrap_or(dotted);
    let second = parts.next();
    if names.contains(first) && !UNREADABLE.contains(&first) && !["vars", "env", "host", "hosts"].contains(&first) {
        return None;
    }
    match (first, second) {
        (forbidden, _) if UNREADABLE.contains(&forbidden) => Some(
            Diagnostic::error(format!("a variable cannot read `{forbidden}`"))
                .label("not known when variables are bound")
                .help(
                    "variables are bound (and journalled) before secrets are resolved, versions chosen and \
                     steps run: use it in the step that needs it",
                ),
        ),
        ("vars", Some(var)) if !names.contains(var) => Some(undeclared(var, names)),
        ("vars", _) => None,
        ("env", Some("name")) | ("env", None) => None,
        ("env", Some(field)) => Some(
            Diagnostic::error(format!("undeclared environment field `{field}`"))
                .label("not declared")
                .help("an environment has `env.name`"),
        ),
        ("host", None) | ("hosts", _) => None,
        ("host", Some(field)) if HOST_FIELDS.contains(&field) => None,
        ("host", Some(field)) => Some(
            Diagnostic::error(format!("undeclared host field `{field}`"))
                .label("not declared")
                .help("a host has `host.name`, `host.address` and `host.roles`"),
        ),
        _ => Some(undeclared(first, names)),
    }
}

fn undeclared(name: &str, names: &BTreeSet<String>) -> Diagnostic {
    let diagnostic = Diagnostic::error(format!("undeclared variable `{name}`")).label("not declared");
    let candidates = names.iter().map(String::as_str).chain(["vars", "env"]);
    match did_you_mean(name, candidates) {
        Some(close) => diagnostic.help(format!("did you mean `{close}`?")),
        None => diagnostic.help(format!("declare it in `[vars]`: `{name} = …`")),
    }
}

/// The variable `dotted` makes `owner` depend on, if any.
fn dependency(dotted: &str, names: &BTreeSet<String>, owner: &str) -> Vec<String> {
    let mut parts = dotted.split('.');
    let first = parts.next().unwrap_or(dotted);
    match (first, parts.next()) {
        ("vars", Some(var)) if names.contains(var) => vec![var.to_owned()],
        // The whole `vars` map: every other variable.
        ("vars", None) if !names.contains("vars") => names.iter().filter(|n| n.as_str() != owner).cloned().collect(),
        (name, _) if names.contains(name) => vec![name.to_owned()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_read_as_the_declared_type() {
        assert_eq!(Kind::Boolean.parse_flag("false"), Ok(serde_json::Value::Bool(false)));
        assert_eq!(Kind::Boolean.parse_flag("no"), Err(()));
        assert_eq!(Kind::Boolean.parse_flag("False"), Err(()));
        assert_eq!(Kind::Integer.parse_flag("12"), Ok(serde_json::json!(12)));
        assert_eq!(Kind::Integer.parse_flag("1_000"), Ok(serde_json::json!(1000)));
        assert_eq!(Kind::Integer.parse_flag("abc"), Err(()));
        assert_eq!(Kind::Integer.parse_flag("1.5"), Err(()));
        assert_eq!(Kind::Integer.parse_flag("4\nother = 5"), Err(()));
        assert_eq!(Kind::Float.parse_flag("2"), Ok(serde_json::json!(2.0)));
        assert_eq!(Kind::Float.parse_flag("0.25"), Ok(serde_json::json!(0.25)));
        assert_eq!(Kind::Float.parse_flag("nan"), Err(()));
        assert_eq!(Kind::String.parse_flag("{{ root }}"), Ok(serde_json::json!("{{ root }}")));
        assert_eq!(Kind::Array.parse_flag(r#"["en_US", "de_DE"]"#), Ok(serde_json::json!(["en_US", "de_DE"])));
        assert_eq!(Kind::Array.parse_flag("en_US"), Err(()));
        assert_eq!(
            Kind::Table.parse_flag("{ host = \"db\", port = 5432 }"),
            Ok(serde_json::json!({"host": "db", "port": 5432}))
        );
        assert_eq!(Kind::Table.parse_flag("[1]"), Err(()));
    }

    #[test]
    fn one_expression_is_the_whole_text() {
        assert!(is_one_expression("{{ workers }}"));
        assert!(is_one_expression("{{- workers -}}"));
        assert!(is_one_expression("{{ workers * 2 }}"));
        assert!(!is_one_expression(" {{ workers }}"));
        assert!(!is_one_expression("{{ a }}{{ b }}"));
        assert!(!is_one_expression("{{ a }}/x"));
        assert!(!is_one_expression("plain"));
    }
}
