//! `check`: the only door from the raw model to a `Playbook`. It binds the
//! playbook to its environment and variables, expands includes, compiles every
//! template and guard, resolves every name a template reads, and reports every
//! problem at once, sorted by position.
//!
//! It reads files (the playbook, includes, template sources, environments) but
//! never runs anything.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use regex::Regex;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::diagnostic::{Diagnostic, Location, Source, did_you_mean};
use crate::document;
use crate::playbook::{
    Action, Batch, Bound, Check, Command, Count, Edit, EditKind, Expect, Extract, FileTemplate, Host, Inventory, LOCAL,
    MatrixRow, Missing, Pattern, Playbook, Probe, Rollback, Scope, Secret, SecretSource, Step, StepId, Target,
    VersionSpec, WindowRule, WindowSpec,
};
use crate::raw::{
    RawCheck, RawEdit, RawEnvironment, RawFleet, RawHost, RawPlaybook, RawProbe, RawRollback, RawSecret, RawSsh,
    RawStep, RawTemplate, RawValue, RawVersion, RawWindow,
};
use crate::template::{Guard, Quoting, Template, locate_name};
use crate::vars::{Kind, Layer, Vars};
use crate::version::Scheme;

/// What binds a playbook to a place: the environment and variable overrides.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    /// `--env NAME`: `environments/NAME.toml` beside the playbook.
    pub env: Option<String>,
    /// `--env-file PATH`.
    pub env_file: Option<PathBuf>,
    /// `--var-file PATH`, in order.
    pub var_files: Vec<PathBuf>,
    /// `--var k=v`, in order.
    pub vars: Vec<(String, String)>,
}

/// The longest step id (each part of an included `outer.inner`).
const MAX_ID: usize = 100;

/// The shortest timeout: less cannot run a command.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// Context names every template may read besides the vars.
const BUILTINS: [&str; 10] =
    ["vars", "env", "secrets", "version", "requirements", "steps", "run", "step", "host", "hosts"];
const VERSION_FIELDS: [&str; 5] = ["current", "target", "change", "scheme", "candidates"];
const VERSION_ATTRIBUTES: [&str; 6] = ["major", "minor", "patch", "patch_level", "stability", "text"];
const STEP_FIELDS: [&str; 4] = ["stdout", "exit_code", "skipped", "stderr"];
/// `step.*`: the step being run.
const CURRENT_STEP_FIELDS: [&str; 3] = ["id", "attempt", "interrupted"];
const RUN_FIELDS: [&str; 3] = ["id", "started_at", "resumed"];

/// Loads and checks a playbook with its environment and overrides.
pub fn load(path: &Path, inputs: &Inputs) -> Result<Playbook, Vec<Diagnostic>> {
    let mut checker = Checker::default();
    let playbook = checker.playbook(path, inputs);
    let mut diagnostics = checker.diagnostics;
    match playbook {
        Some(playbook) if diagnostics.is_empty() => Ok(playbook),
        _ => {
            crate::diagnostic::sort(&mut diagnostics);
            if diagnostics.is_empty() {
                diagnostics.push(Diagnostic::error("internal error: the playbook failed to check without a reason"));
            }
            Err(diagnostics)
        }
    }
}

/// What templates in one place may read.
struct Names<'a> {
    vars: &'a BTreeSet<String>,
    params: Vec<String>,
    secrets: &'a BTreeSet<String>,
    requirements: &'a BTreeSet<String>,
    has_version: bool,
    /// May templates here read `steps.*` (not in checks and version probes)?
    steps_visible: bool,
}

/// What an include hands its steps: its guards, where they run, its batches.
#[derive(Clone, Default)]
struct Outer {
    guards: Vec<(Guard, Option<Arc<Scope>>)>,
    /// `on` of an enclosing include: the names, where written.
    on: Option<(Vec<String>, Location)>,
    once: bool,
    batch: Option<Batch>,
}

/// An environment's hosts and roles, to check `on` against.
struct Fleet {
    /// The environment file, for messages.
    file: String,
    hosts: Vec<String>,
    roles: IndexMap<String, Vec<String>>,
}

#[derive(Default)]
struct Checker {
    /// The chosen environment's fleet: what `on` resolves against (`None`: this machine).
    fleet: Option<Inventory>,
    /// Every fleet `on` is checked against (the chosen one, or all when none is chosen).
    fleets: Vec<Fleet>,
    diagnostics: Vec<Diagnostic>,
    hasher: Sha256,
    /// Ids of the steps checked so far, in order: what `steps.*` may name.
    seen: Vec<String>,
    /// What templates read: `vars.NAME`, `secrets.NAME` (or `vars`, `secrets` whole).
    read: BTreeSet<String>,
    /// What environments declare that the playbook does not (`vars.NAME`, `secrets.NAME`), with places.
    env_only: Vec<(String, Location)>,
    /// Every file read so far, with its digest.
    sources: Vec<crate::playbook::SourceDigest>,
    /// Tables that lost a key that did not parse (file, span): what they lack may be that key.
    damaged: Vec<(String, std::ops::Range<usize>)>,
}

/// A step's fields besides its id and action, checked.
struct Fields {
    name: Option<Template>,
    creates: Option<Template>,
    cwd: Option<Template>,
    env: Vec<(String, Template)>,
    timeout: Option<Duration>,
    retry_delay: Duration,
    rollback: Rollback,
    read_only: bool,
}

impl Checker {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// Reports that the table at `table` lacks something, unless a key of it
    /// was left out for not parsing: that key may be what it lacks, and it is reported already.
    fn absent(&mut self, diagnostic: Diagnostic, source: &Source, table: std::ops::Range<usize>) {
        let damaged = self.damaged.iter().any(|(file, span)| *file == source.display && *span == table);
        if !damaged {
            self.push(diagnostic);
        }
    }

    /// Parses a document as far as it goes, keeping its problems.
    fn parse<T: serde::de::DeserializeOwned>(
        &mut self,
        source: &Arc<Source>,
        arrays: &[(&str, document::Piece)],
    ) -> Option<T> {
        let parsed = document::parse_partial::<T>(source, arrays);
        self.diagnostics.extend(parsed.diagnostics);
        self.damaged.extend(parsed.damaged.into_iter().map(|span| (source.display.clone(), span)));
        parsed.value
    }

    fn read(&mut self, path: &Path, what: &str, at: Option<Location>) -> Option<Arc<Source>> {
        match document::read(path, what) {
            Ok(source) => {
                // Content only: the same playbook has the same fingerprint wherever it is checked out.
                self.hasher.update(source.text.as_bytes());
                self.hasher.update([0]);
                let path = absolute(path);
                if !self.sources.iter().any(|s| s.path == path) {
                    self.sources.push(crate::playbook::SourceDigest {
                        kind: what.to_owned(),
                        file: source.display.clone(),
                        path,
                        sha256: crate::diagnostic::hex(&Sha256::digest(source.text.as_bytes())),
                    });
                }
                Some(source)
            }
            Err(diagnostic) => {
                self.push(diagnostic.at_opt(at));
                None
            }
        }
    }

    fn playbook(&mut self, path: &Path, inputs: &Inputs) -> Option<Playbook> {
        let path = absolute(path);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let source = self.read(&path, "playbook", None)?;
        // What does not parse is reported and left out; the rest is still checked.
        let raw: RawPlaybook = self.parse(
            &source,
            &[
                ("step", document::piece::<RawStep>),
                ("finally", document::piece::<RawStep>),
                ("check", document::piece::<RawCheck>),
            ],
        )?;
        self.format(&raw, &source, true);
        let name = match &raw.name {
            Some(name) => {
                if name.get_ref().trim().is_empty() {
                    self.push(Diagnostic::error("the playbook's `name` is empty").at(loc(&source, name)));
                }
                name.get_ref().clone()
            }
            None => {
                self.absent(
                    Diagnostic::error("missing key `name`")
                        .at(Location::new(&source, 0..0))
                        .help("a playbook names itself: `name = \"my-app-upgrade\"`"),
                    &source,
                    0..source.text.len(),
                );
                String::new()
            }
        };
        if let Some(requires) = &raw.requires {
            self.requires(requires, &source);
        }
        for (key, value) in &raw.params {
            self.push(
                Diagnostic::error(format!("`params` belong in an included file, not in a playbook (`{key}`)"))
                    .at(Location::new(&source, value.span())),
            );
        }

        let environment_name = inputs
            .env
            .clone()
            .or_else(|| inputs.env_file.as_ref().and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned())));
        let bound = inputs.env.is_some() || inputs.env_file.is_some();
        let environments = self.environments(&dir, inputs);
        let all: Vec<&(Arc<Source>, RawEnvironment)> = environments.iter().collect();
        let (vars, declared) =
            self.variables(&raw, &source, &all, bound, environment_name.as_deref(), Some(inputs), None);
        if !bound {
            // Without `--env`, every environment beside the playbook is checked as if chosen.
            for environment in &environments {
                let path = PathBuf::from(&environment.0.display);
                let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
                self.variables(&raw, &source, &[environment], true, name.as_deref(), None, None);
                // Its hosts too (their vars, how they are reached), without binding them.
                self.inventory(&raw, &source, environment, name.as_deref(), None);
            }
        } else if let Some(environment) = environments.first() {
            self.fleet = self.inventory(&raw, &source, environment, environment_name.as_deref(), Some(inputs));
        }
        let mut secrets_raw: IndexMap<String, (Spanned<RawSecretOwned>, Arc<Source>)> = raw
            .secrets
            .iter()
            .map(|(name, secret)| (name.clone(), (owned_secret(secret), Arc::clone(&source))))
            .collect();
        let mut window_raw = raw.window.as_ref().map(|w| (w, Arc::clone(&source)));
        for (env_source, env) in &environments {
            for (key, secret) in &env.secrets {
                let name = key.get_ref();
                if !raw.secrets.contains_key(name) {
                    self.env_only.push((format!("secrets.{name}"), Location::new(env_source, key.span())));
                }
                if bound {
                    secrets_raw.insert(name.clone(), (owned_secret(secret), Arc::clone(env_source)));
                } else {
                    if !raw.secrets.contains_key(name) {
                        secrets_raw.entry(name.clone()).or_insert((owned_secret(secret), Arc::clone(env_source)));
                    }
                    // Every environment's sources are checked, chosen or not.
                    let one = IndexMap::from([(name.clone(), (owned_secret(secret), Arc::clone(env_source)))]);
                    self.secrets(&one, &dir);
                }
            }
            if !bound && let Some(window) = &env.window {
                self.window(window, env_source);
            }
        }
        let environment_window = environments.iter().find_map(|(s, e)| e.window.as_ref().map(|w| (w, Arc::clone(s))));
        if bound && let Some(window) = environment_window {
            window_raw = Some(window);
        }

        let secrets = self.secrets(&secrets_raw, &dir);
        // What templates may read is what is declared, even where a declaration
        // has a problem of its own: that problem is reported once, where it is.
        let secret_names: BTreeSet<String> = secrets_raw.keys().cloned().collect();
        let requirements: BTreeSet<String> = raw
            .version
            .iter()
            .flat_map(|v| v.get_ref().matrix.iter().flat_map(|row| row.get_ref().set.keys().cloned()))
            .collect();
        let window = window_raw.and_then(|(w, s)| self.window(w, &s));

        let names = Names {
            vars: &declared,
            params: Vec::new(),
            secrets: &secret_names,
            requirements: &requirements,
            has_version: raw.version.is_some(),
            steps_visible: false,
        };
        let version = raw.version.as_ref().and_then(|v| self.version(v, &source, &names)).map(|mut version| {
            let on = raw.version.as_ref().and_then(|v| v.get_ref().on.as_ref());
            let names = on.map(|on| (vec![on.get_ref().clone()], loc(&source, on)));
            version.on = self.targets(names.as_ref(), true).into_iter().next().unwrap_or_else(|| LOCAL.to_owned());
            version
        });
        let checks: Vec<Check> = raw.check.iter().filter_map(|check| self.check(check, &source, &names)).collect();

        let mut steps = Vec::new();
        let mut ids: HashMap<String, Location> = HashMap::new();
        let names = Names { steps_visible: true, ..names };
        let mut stack = vec![path.clone()];
        for step in &raw.step {
            self.step(step, &source, &dir, None, Outer::default(), &names, &mut ids, &mut stack, &mut steps);
        }
        let mut finally = Vec::new();
        for step in &raw.finally {
            self.step(step, &source, &dir, None, Outer::default(), &names, &mut ids, &mut stack, &mut finally);
        }
        for step in &finally {
            if step.read_only {
                self.push(
                    Diagnostic::error(format!("`finally` step `{}` cannot be `read_only`", step.id))
                        .at(step.location.clone()),
                );
            }
        }

        let playbook_vars: Vec<&str> = raw.vars.keys().map(String::as_str).collect();
        let playbook_secrets: Vec<&str> = raw.secrets.keys().map(String::as_str).collect();
        self.unused_environment_names(&playbook_vars, &playbook_secrets);

        let fingerprint = crate::diagnostic::hex(&std::mem::take(&mut self.hasher).finalize());
        Some(Playbook {
            name,
            description: raw.description.clone(),
            source,
            environment: environment_name,
            vars,
            secrets,
            version,
            window,
            checks,
            steps,
            finally,
            fingerprint,
            inventory: self.fleet.take(),
            sources: std::mem::take(&mut self.sources),
        })
    }

    /// Binds the variables: playbook < environment < `--var-file` < `--var`
    /// (`inputs`). Types come from the declarations; templates among the
    /// values are rendered last, in dependency order. With `bound`, the
    /// environments' values apply; without, they only declare their own
    /// variables. Returns the values and every declared name.
    #[allow(clippy::too_many_arguments)]
    fn variables(
        &mut self,
        raw: &RawPlaybook,
        source: &Arc<Source>,
        environments: &[&(Arc<Source>, RawEnvironment)],
        bound: bool,
        environment_name: Option<&str>,
        inputs: Option<&Inputs>,
        host: Option<(&Arc<Source>, &RawHost, crate::vars::HostInfo)>,
    ) -> (IndexMap<String, serde_json::Value>, BTreeSet<String>) {
        let mut vars = Vars::new(environment_name);
        for (key, value) in &raw.vars {
            let at = Location::new(source, value.span());
            if self.reserved(key, &at) {
                continue;
            }
            vars.declare(key, value.get_ref(), at, Layer::Playbook, true);
        }
        // What the environments declare themselves, then their values for the playbook's.
        for (env_source, env) in environments {
            for (key, value) in &env.vars {
                let (key_at, key) = (Location::new(env_source, key.span()), key.get_ref());
                if raw.vars.contains_key(key) || self.reserved(key, &key_at) {
                    continue;
                }
                if inputs.is_some() {
                    self.env_only.push((format!("vars.{key}"), key_at));
                }
                if !vars.contains(key) {
                    vars.declare(
                        key,
                        value.get_ref(),
                        Location::new(env_source, value.span()),
                        Layer::Environment,
                        bound,
                    );
                }
            }
        }
        vars.infer_kinds();
        if bound {
            for (env_source, env) in environments {
                for (key, value) in &env.vars {
                    if raw.vars.contains_key(key.get_ref()) {
                        let at = Location::new(env_source, value.span());
                        vars.set_from_file(key.get_ref(), value.get_ref(), at, Layer::Environment);
                    }
                }
            }
        }
        // A host's values: above the environment's, below `--var-file` and `--var`.
        if let Some((env_source, raw_host, info)) = host {
            for (key, value) in &raw_host.vars {
                if vars.contains(key.get_ref()) {
                    let at = Location::new(env_source, value.span());
                    vars.set_from_file(key.get_ref(), value.get_ref(), at, Layer::Host);
                } else {
                    let mut diagnostic =
                        Diagnostic::error(format!("`{}` is not a variable of this playbook", key.get_ref()))
                            .at(Location::new(env_source, key.span()))
                            .label("a host var must be declared in the playbook or the environment");
                    if let Some(close) = did_you_mean(key.get_ref(), vars.names()) {
                        diagnostic = diagnostic.help(format!("did you mean `{close}`?"));
                    }
                    self.push(diagnostic);
                }
            }
            vars.for_host(info);
        }
        for file in inputs.map(|i| i.var_files.as_slice()).unwrap_or_default() {
            self.var_file(file, &mut vars);
        }
        for (key, value) in inputs.map(|i| i.vars.as_slice()).unwrap_or_default() {
            if !vars.contains(key) {
                let mut diagnostic = Diagnostic::error(format!("`--var {key}=…` names no variable of this playbook"));
                if let Some(close) = did_you_mean(key, vars.names()) {
                    diagnostic = diagnostic.help(format!("did you mean `{close}`?"));
                }
                self.push(diagnostic);
                continue;
            }
            vars.set_from_flag(key, value);
        }
        let declared: BTreeSet<String> = vars.names().map(str::to_owned).collect();
        let (values, reads, problems) = vars.finish();
        self.diagnostics.extend(problems);
        for name in reads {
            self.note_read(&name);
        }
        (values, declared)
    }

    /// The fleet of an environment: its hosts (each with its own values of the
    /// variables), how to reach them and how steps run over them. Every
    /// problem is reported; `None` without hosts, or when the hosts cannot be used.
    fn inventory(
        &mut self,
        raw: &RawPlaybook,
        source: &Arc<Source>,
        environment: &(Arc<Source>, RawEnvironment),
        environment_name: Option<&str>,
        inputs: Option<&Inputs>,
    ) -> Option<Inventory> {
        let (env_source, env) = environment;
        let env_dir = Path::new(&env_source.display).parent().map(absolute).unwrap_or_default();
        if env.hosts.is_empty() {
            for (table, span) in
                [("ssh", env.ssh.as_ref().map(|s| s.span())), ("fleet", env.fleet.as_ref().map(|f| f.span()))]
            {
                if let Some(span) = span {
                    self.push(
                        Diagnostic::error(format!("`[{table}]` without any `[hosts.NAME]`"))
                            .at(Location::new(env_source, span))
                            .help("declare the hosts, or remove the table: without hosts everything runs here"),
                    );
                }
            }
            return None;
        }
        let mut names: Vec<String> = Vec::new();
        let mut roles: IndexMap<String, Vec<String>> = IndexMap::new();
        for (key, host) in &env.hosts {
            let name = key.get_ref();
            if !StepId::is_valid(name) || name == LOCAL {
                self.push(
                    Diagnostic::error(format!("`{name}` cannot name a host"))
                        .at(Location::new(env_source, key.span()))
                        .help("host names match `[a-z0-9][a-z0-9_-]*`, and `local` is this machine"),
                );
            }
            names.push(name.clone());
            for role in &host.get_ref().roles {
                if !StepId::is_valid(role.get_ref()) || role.get_ref() == LOCAL {
                    self.push(
                        Diagnostic::error(format!("`{}` cannot name a role", role.get_ref()))
                            .at(Location::new(env_source, role.span()))
                            .help("role names match `[a-z0-9][a-z0-9_-]*`"),
                    );
                }
                roles.entry(role.get_ref().clone()).or_default().push(name.clone());
            }
        }
        // A name that is a host and a role must mean the same hosts either way
        // (`[hosts.admin]` with `roles = ["admin"]` is fine).
        for key in env.hosts.keys() {
            if let Some(members) = roles.get(key.get_ref())
                && members.as_slice() != [key.get_ref().clone()]
            {
                self.push(
                    Diagnostic::error(format!("`{}` is both a host and a role of other hosts", key.get_ref()))
                        .at(Location::new(env_source, key.span()))
                        .help("`on` could not tell them apart: rename one"),
                );
            }
        }
        let ssh = self.ssh_options(env.ssh.as_ref(), env_source, &env_dir);
        let (parallel, max_fail) = self.fleet_options(env.fleet.as_ref(), env_source);
        let mut hosts = Vec::new();
        for (key, host) in &env.hosts {
            let h = host.get_ref();
            let destination = match crate::transport::ssh::Destination::parse(h.ssh.get_ref()) {
                Ok(destination) => destination,
                Err(reason) => {
                    self.push(Diagnostic::error(reason).at(Location::new(env_source, h.ssh.span())));
                    continue;
                }
            };
            let state_dir = match &h.state_dir {
                Some(dir) if dir.get_ref().trim().is_empty() => {
                    self.push(Diagnostic::error("`state_dir` is empty").at(Location::new(env_source, dir.span())));
                    continue;
                }
                Some(dir) => dir.get_ref().clone(),
                None => ".upshift".to_owned(),
            };
            let info = crate::vars::HostInfo {
                name: key.get_ref().clone(),
                address: destination.display(),
                roles: h.roles.iter().map(|r| r.get_ref().clone()).collect(),
                all: names.clone(),
            };
            let (vars, _) = self.variables(
                raw,
                source,
                &[environment],
                true,
                environment_name,
                inputs,
                Some((env_source, h, info.clone())),
            );
            hosts.push(Host { name: info.name, destination, roles: info.roles, vars, state_dir });
        }
        self.fleets.push(Fleet { file: env_source.display.clone(), hosts: names, roles });
        Some(Inventory { hosts, ssh, parallel, max_fail })
    }

    fn ssh_options(
        &mut self,
        raw: Option<&Spanned<RawSsh>>,
        source: &Arc<Source>,
        dir: &Path,
    ) -> crate::transport::ssh::SshOptions {
        let mut options =
            crate::transport::ssh::SshOptions { connect_timeout: Duration::from_secs(10), ..Default::default() };
        let Some(raw) = raw else { return options };
        let r = raw.get_ref();
        let file = |checker: &mut Checker, value: &Option<Spanned<String>>, what: &str| {
            value.as_ref().map(|v| {
                let path = normalize(&dir.join(v.get_ref()));
                if !path.is_file() {
                    checker.push(
                        Diagnostic::error(format!(
                            "the {what} `{}` does not exist",
                            crate::diagnostic::display_path(&path)
                        ))
                        .at(loc(source, v)),
                    );
                }
                path
            })
        };
        options.config = file(self, &r.config, "ssh config");
        options.known_hosts = file(self, &r.known_hosts, "known_hosts file");
        if let Some(timeout) = self.duration(r.connect_timeout.as_ref(), source) {
            if timeout < Duration::from_secs(1) {
                self.push(
                    Diagnostic::error("`connect_timeout` is under a second")
                        .at_opt(r.connect_timeout.as_ref().map(|t| loc(source, t))),
                );
            } else {
                options.connect_timeout = timeout;
            }
        }
        options
    }

    fn fleet_options(&mut self, raw: Option<&Spanned<RawFleet>>, source: &Arc<Source>) -> (usize, Count) {
        let Some(raw) = raw else { return (10, Count::Hosts(0)) };
        let r = raw.get_ref();
        let parallel = match &r.parallel {
            Some(p) if *p.get_ref() >= 1 && *p.get_ref() <= 1000 => *p.get_ref() as usize,
            Some(p) => {
                self.push(Diagnostic::error("`parallel` is a number of hosts from 1 to 1000").at(loc(source, p)));
                10
            }
            None => 10,
        };
        let max_fail =
            r.max_fail.as_ref().and_then(|m| self.count(m, source, "max_fail", true)).unwrap_or(Count::Hosts(0));
        (parallel, max_fail)
    }

    /// A count of hosts (`3`) or a share (`"25%"`); `zero` says whether 0 is allowed.
    fn count(&mut self, raw: &Spanned<RawValue>, source: &Arc<Source>, key: &str, zero: bool) -> Option<Count> {
        let least = usize::from(!zero);
        let count = match raw.get_ref() {
            RawValue::Integer(n) if *n >= least as i64 => Some(Count::Hosts(*n as usize)),
            RawValue::String(text) => text
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<u32>().ok())
                .filter(|p| *p <= 100 && (*p >= 1 || zero))
                .map(Count::Percent),
            _ => None,
        };
        if count.is_none() {
            self.push(
                Diagnostic::error(format!("`{key}` is a number of hosts or a share such as `\"25%\"`"))
                    .at(loc(source, raw))
                    .label(if zero { "0 or more, or 0% to 100%" } else { "1 or more, or 1% to 100%" }),
            );
        }
        count
    }

    /// The names an `on` gives: one, or a list.
    fn names_of(&mut self, raw: &Spanned<RawValue>, source: &Arc<Source>) -> Option<(Vec<String>, Location)> {
        let at = loc(source, raw);
        let names = match raw.get_ref() {
            RawValue::String(name) => vec![name.clone()],
            RawValue::Array(items) if !items.is_empty() => {
                let names: Option<Vec<String>> = items.iter().map(|i| i.as_str().map(str::to_owned)).collect();
                match names {
                    Some(names) => names,
                    None => {
                        self.push(Diagnostic::error("`on` lists hosts and roles by name").at(at).label("not a name"));
                        return None;
                    }
                }
            }
            _ => {
                self.push(
                    Diagnostic::error("`on` names a host, a role, a list of them, or `local`")
                        .at(at)
                        .help("e.g. `on = \"web\"` or `on = [\"web\", \"admin\"]`"),
                );
                return None;
            }
        };
        Some((names, at))
    }

    /// Where something runs: `on`'s names resolved in the chosen fleet (every
    /// host when `on` is absent; this machine without a fleet), checked
    /// against every fleet. `once` keeps the first.
    fn targets(&mut self, on: Option<&(Vec<String>, Location)>, once: bool) -> Vec<String> {
        if let Some((names, at)) = on {
            let mut problems = Vec::new();
            for fleet in &self.fleets {
                for name in names {
                    let known = name == LOCAL || fleet.hosts.contains(name) || fleet.roles.contains_key(name);
                    if !known {
                        let candidates = fleet.hosts.iter().chain(fleet.roles.keys()).map(String::as_str);
                        let mut diagnostic =
                            Diagnostic::error(format!("`{name}` is no host or role of `{}`", fleet.file))
                                .at(at.clone())
                                .label("not in the inventory");
                        diagnostic = match did_you_mean(name, candidates) {
                            Some(close) => diagnostic.help(format!("did you mean `{close}`?")),
                            None => diagnostic.help(format!(
                                "hosts: {}; roles: {}",
                                fleet.hosts.join(", "),
                                fleet.roles.keys().cloned().collect::<Vec<_>>().join(", ")
                            )),
                        };
                        problems.push(diagnostic);
                    }
                }
            }
            self.diagnostics.extend(problems);
        }
        let Some(fleet) = &self.fleet else {
            return vec![LOCAL.to_owned()];
        };
        let mut targets: Vec<String> = match on {
            None => fleet.hosts.iter().map(|h| h.name.clone()).collect(),
            Some((names, _)) => {
                let mut local = false;
                let mut chosen: Vec<&str> = Vec::new();
                for name in names {
                    if name == LOCAL {
                        local = true;
                    }
                    for host in &fleet.hosts {
                        if host.name == *name || host.roles.contains(name) {
                            chosen.push(&host.name);
                        }
                    }
                }
                let mut ordered: Vec<String> = if local { vec![LOCAL.to_owned()] } else { Vec::new() };
                ordered
                    .extend(fleet.hosts.iter().filter(|h| chosen.contains(&h.name.as_str())).map(|h| h.name.clone()));
                ordered
            }
        };
        if once {
            targets.truncate(1);
        }
        if targets.is_empty() {
            // A role no host of this fleet has: reported above when unknown; run nowhere otherwise.
            return targets;
        }
        targets
    }

    fn format(&mut self, raw: &RawPlaybook, source: &Arc<Source>, playbook: bool) {
        match &raw.format {
            Some(format) if *format.get_ref() == 1 => {}
            Some(format) => self.push(
                Diagnostic::error(format!("unsupported format `{}`", format.get_ref()))
                    .at(loc(source, format))
                    .label("this upshift reads format 1")
                    .help("write `format = 1`"),
            ),
            None => {
                let diagnostic =
                    Diagnostic::error("missing key `format`").at(Location::new(source, 0..0)).help(if playbook {
                        "start the playbook with `format = 1`"
                    } else {
                        "start the file with `format = 1`"
                    });
                self.absent(diagnostic, source, 0..source.text.len());
            }
        }
    }

    fn requires(&mut self, requires: &Spanned<String>, source: &Arc<Source>) {
        let ours = semver::Version::parse(env!("CARGO_PKG_VERSION")).expect("the package version is semver");
        match semver::VersionReq::parse(requires.get_ref()) {
            Ok(req) if req.matches(&ours) => {}
            Ok(_) => self.push(
                Diagnostic::error(format!(
                    "this playbook requires upshift `{}`, and this is upshift {ours}",
                    requires.get_ref()
                ))
                .at(loc(source, requires)),
            ),
            Err(error) => self.push(
                Diagnostic::error(format!("`requires` is not a version requirement: {error}"))
                    .at(loc(source, requires)),
            ),
        }
    }

    /// The environment files that bind or declare variables: the chosen one, or
    /// (when none is chosen) every `environments/*.toml` beside the playbook.
    fn environments(&mut self, dir: &Path, inputs: &Inputs) -> Vec<(Arc<Source>, RawEnvironment)> {
        let env_dir = dir.join("environments");
        let paths: Vec<PathBuf> = if let Some(file) = &inputs.env_file {
            vec![absolute(file)]
        } else if let Some(name) = &inputs.env {
            let path = env_dir.join(format!("{name}.toml"));
            if !path.is_file() {
                let known = list_environments(&env_dir);
                let mut diagnostic = Diagnostic::error(format!(
                    "no environment `{name}`: `{}` does not exist",
                    crate::diagnostic::display_path(&path)
                ));
                diagnostic = match did_you_mean(name, known.iter().map(String::as_str)) {
                    Some(close) => diagnostic.help(format!("did you mean `{close}`?")),
                    None if known.is_empty() => diagnostic.help("this playbook has no `environments/` directory"),
                    None => diagnostic.help(format!("environments here: {}", known.join(", "))),
                };
                self.push(diagnostic);
                return Vec::new();
            }
            vec![path]
        } else {
            list_environments(&env_dir).iter().map(|name| env_dir.join(format!("{name}.toml"))).collect()
        };
        let mut out = Vec::new();
        for path in paths {
            let Some(source) = self.read(&path, "environment file", None) else {
                continue;
            };
            if let Some(env) = self.parse::<RawEnvironment>(&source, &[]) {
                out.push((source, env));
            }
        }
        out
    }

    fn var_file(&mut self, path: &Path, vars: &mut Vars) {
        let Some(source) = self.read(&absolute(path), "var file", None) else {
            return;
        };
        match toml::from_str::<IndexMap<String, Spanned<RawValue>>>(&source.text) {
            Ok(table) => {
                for (key, value) in table {
                    let at = Location::new(&source, value.span());
                    if vars.contains(&key) {
                        vars.set_from_file(&key, value.get_ref(), at, Layer::VarFile);
                    } else {
                        let mut diagnostic =
                            Diagnostic::error(format!("`{key}` is not a variable of this playbook")).at(at);
                        if let Some(close) = did_you_mean(&key, vars.names()) {
                            diagnostic = diagnostic.help(format!("did you mean `{close}`?"));
                        }
                        self.push(diagnostic);
                    }
                }
            }
            Err(error) => {
                let diagnostic =
                    Diagnostic::error(format!("invalid var file: {}", error.message().trim_end_matches('.')));
                self.push(match error.span() {
                    Some(span) => diagnostic.at(Location::new(&source, span)),
                    None => diagnostic,
                });
            }
        }
    }

    /// A variable named like a part of the template context is an error.
    fn reserved(&mut self, key: &str, at: &Location) -> bool {
        if !BUILTINS.contains(&key) {
            return false;
        }
        self.push(
            Diagnostic::error(format!("`{key}` is a reserved name in templates"))
                .at(at.clone())
                .label("this variable would be hidden")
                .help(format!("rename the variable; `{key}` is part of the template context")),
        );
        true
    }

    /// Records a name a template reads (`root`, `vars.root` and `secrets.key`
    /// as `vars.root` and `secrets.key`).
    fn note_read(&mut self, dotted: &str) {
        let mut parts = dotted.split('.');
        let first = parts.next().unwrap_or(dotted);
        let read = match (first, parts.next()) {
            ("vars" | "secrets", Some(member)) => format!("{first}.{member}"),
            ("vars" | "secrets", None) => first.to_owned(),
            _ => format!("vars.{first}"),
        };
        self.read.insert(read);
    }

    /// Environment variables and secrets the playbook does not declare and no
    /// template reads: typos, most likely (`rot = "…"` for `root`).
    fn unused_environment_names(&mut self, playbook_vars: &[&str], playbook_secrets: &[&str]) {
        for (dotted, at) in std::mem::take(&mut self.env_only) {
            let (kind, name) = dotted.split_once('.').unwrap_or(("vars", &dotted));
            if self.read.contains(&dotted) || self.read.contains(kind) {
                continue;
            }
            let (what, known) = if kind == "vars" { ("variable", playbook_vars) } else { ("secret", playbook_secrets) };
            let mut diagnostic = Diagnostic::error(format!("`{name}` is not a {what} of this playbook"))
                .at(at)
                .label(format!("the playbook does not declare this {what}, and no template reads it"));
            diagnostic = match did_you_mean(name, known.iter().copied()) {
                Some(close) => diagnostic.help(format!("did you mean `{close}`?")),
                None => diagnostic
                    .help(format!("declare it in the playbook's `[{kind}]`, read it in a template, or remove it")),
            };
            self.push(diagnostic);
        }
    }

    fn secrets(
        &mut self,
        raw: &IndexMap<String, (Spanned<RawSecretOwned>, Arc<Source>)>,
        dir: &Path,
    ) -> IndexMap<String, Secret> {
        let mut out = IndexMap::new();
        for (name, (secret, source)) in raw {
            let location = Location::new(source, secret.span());
            let s = secret.get_ref();
            let mut given = Vec::new();
            if let Some(env) = &s.env {
                given.push(SecretSource::Env(env.clone()));
            }
            if let Some(file) = &s.file {
                given.push(SecretSource::File(dir.join(file)));
            }
            if let Some(command) = &s.command {
                if command.is_empty() {
                    self.push(
                        Diagnostic::error(format!("secret `{name}` has an empty `command`")).at(location.clone()),
                    );
                    continue;
                }
                given.push(SecretSource::Command(command.clone()));
            }
            if given.len() != 1 {
                self.absent(
                    Diagnostic::error(format!("secret `{name}` needs exactly one source, found {}", given.len()))
                        .at(location)
                        .help("give one of `env = \"VAR\"`, `file = \"path\"`, `command = [\"argv\", …]`"),
                    source,
                    secret.span(),
                );
                continue;
            }
            out.insert(name.clone(), Secret { source: given.remove(0), required: s.required.unwrap_or(true) });
        }
        out
    }

    /// Checks `[version]` whole: a part with a problem does not hide the problems of the others.
    fn version(&mut self, raw: &Spanned<RawVersion>, source: &Arc<Source>, names: &Names<'_>) -> Option<VersionSpec> {
        let location = Location::new(source, raw.span());
        let v = raw.get_ref();
        let scheme = match &v.scheme {
            None => Some(Scheme::Semver),
            Some(scheme) => {
                let known = Scheme::parse(scheme.get_ref());
                if known.is_none() {
                    self.push(
                        Diagnostic::error(format!("unknown version scheme `{}`", scheme.get_ref()))
                            .at(loc(source, scheme))
                            .help("the schemes are `semver`, `composer`, `pep440` and `npm`"),
                    );
                }
                known
            }
        };
        let current = self.probe(v.current.as_ref(), "current", source, &location);
        let available = self.probe(v.available.as_ref(), "available", source, &location);
        for probe in [&current, &available].into_iter().flatten() {
            self.probe_names(probe, names);
        }
        let target = v.target.as_ref().and_then(|target| {
            let location = loc(source, target);
            let template = Template::new(target.get_ref(), Quoting::Plain, Some(location.clone()));
            if !template.is_literal() {
                self.template(&template, names);
            }
            // Without a known scheme there is nothing to read a requirement with.
            let scheme = scheme?;
            let requirement = if template.is_literal() {
                match scheme.requirement(target.get_ref()) {
                    Ok(requirement) => Some(requirement),
                    Err(reason) => {
                        // The reason names the text and what it is not: say it once.
                        self.push(
                            Diagnostic::error(reason)
                                .at(location)
                                .label(format!("`target` must be {}", scheme.a_requirement())),
                        );
                        return None;
                    }
                }
            } else {
                None
            };
            Some(Target { text: target.get_ref().clone(), location, template, requirement })
        });
        let scheme = scheme?;
        let mut matrix = Vec::new();
        for row in &v.matrix {
            let r = row.get_ref();
            match scheme.requirement(r.versions.get_ref()) {
                Ok(requirement) => {
                    matrix.push(MatrixRow { versions: r.versions.get_ref().clone(), requirement, set: r.set.clone() })
                }
                Err(reason) => self.push(
                    Diagnostic::error(reason)
                        .at(loc(source, &r.versions))
                        .label(format!("`versions` must be {}", scheme.a_requirement())),
                ),
            }
        }
        Some(VersionSpec {
            scheme,
            current: current?,
            available: available?,
            target,
            allow_major: v.allow_major.unwrap_or(false),
            allow_downgrade: v.allow_downgrade.unwrap_or(false),
            allow_prerelease: v.allow_prerelease.unwrap_or(false),
            matrix,
            on: LOCAL.to_owned(),
        })
    }

    fn probe(
        &mut self,
        raw: Option<&Spanned<RawProbe>>,
        what: &str,
        source: &Arc<Source>,
        table: &Location,
    ) -> Option<Probe> {
        let Some(raw) = raw else {
            self.absent(
                Diagnostic::error(format!("`[version]` needs `{what}`"))
                    .at(table.clone())
                    .help(format!("for example `{what} = {{ run = \"…\", regex = '(\\d+\\.\\d+\\.\\d+)' }}`")),
                source,
                table.span.clone(),
            );
            return None;
        };
        let location = Location::new(source, raw.span());
        let p = raw.get_ref();
        let count =
            [p.run.is_some(), p.exec.is_some(), p.value.is_some(), p.list.is_some()].iter().filter(|x| **x).count();
        if count != 1 {
            self.absent(
                Diagnostic::error(format!("`version.{what}` needs exactly one of `run`, `exec`, `value`, `list`"))
                    .at(location),
                source,
                raw.span(),
            );
            return None;
        }
        if let Some(value) = &p.value {
            return Some(Probe::Value(Template::new(value.get_ref(), Quoting::Plain, Some(loc(source, value)))));
        }
        if let Some(list) = &p.list {
            return Some(Probe::List(list.iter().map(|v| v.get_ref().clone()).collect()));
        }
        let command = match (&p.run, &p.exec) {
            (Some(run), _) => Command::Shell {
                shell: "sh".to_owned(),
                script: Template::new(run.get_ref(), Quoting::shell("sh"), Some(loc(source, run))),
            },
            (None, Some(exec)) => self.exec(exec, source, &location)?,
            (None, None) => return None,
        };
        let extract = match (&p.regex, &p.json) {
            (Some(_), Some(_)) => {
                self.push(Diagnostic::error(format!("`version.{what}` has both `regex` and `json`")).at(location));
                return None;
            }
            (Some(regex), None) => Extract::Regex(self.regex(regex, source)?),
            (None, Some(pointer)) => {
                if !pointer.get_ref().is_empty() && !pointer.get_ref().starts_with('/') {
                    self.push(
                        Diagnostic::error(format!("`{}` is not a JSON pointer", pointer.get_ref()))
                            .at(loc(source, pointer))
                            .help("a JSON pointer starts with `/`, as in `/versions`"),
                    );
                    return None;
                }
                Extract::JsonPointer(pointer.get_ref().clone())
            }
            (None, None) if what == "available" => Extract::Lines,
            (None, None) => Extract::Whole,
        };
        let cwd = p.cwd.as_ref().map(|c| Template::new(c.get_ref(), Quoting::Plain, Some(loc(source, c))));
        Some(Probe::Command { command, cwd, extract })
    }

    fn probe_names(&mut self, probe: &Probe, names: &Names<'_>) {
        match probe {
            Probe::Command { command, cwd, .. } => {
                self.command_names(command, names);
                if let Some(cwd) = cwd {
                    self.template(cwd, names);
                }
            }
            Probe::Value(template) => self.template(template, names),
            Probe::List(_) => {}
        }
    }

    /// A regex that may be a template: compiled now when it is plain text.
    fn pattern(&mut self, regex: &Spanned<String>, source: &Arc<Source>) -> Option<Pattern> {
        if has_template_syntax(regex.get_ref()) {
            Some(Pattern::Template(Template::new(regex.get_ref(), Quoting::Regex, Some(loc(source, regex)))))
        } else {
            self.regex(regex, source).map(Pattern::Fixed)
        }
    }

    /// `expect.min`/`max`: a number, or a template that renders to one.
    fn bound(&mut self, key: &str, raw: &Spanned<RawValue>, source: &Arc<Source>, names: &Names<'_>) -> Option<Bound> {
        let at = loc(source, raw);
        match raw.get_ref() {
            RawValue::Integer(i) => Some(Bound::Fixed(serde_json::Number::from(*i))),
            RawValue::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(number) => Some(Bound::Fixed(number)),
                None => {
                    self.push(Diagnostic::error(format!("`{key}` is not a finite number")).at(at));
                    None
                }
            },
            RawValue::String(text) if has_template_syntax(text) => {
                let template = Template::new(text, Quoting::Plain, Some(at));
                self.template(&template, names);
                Some(Bound::Template(template))
            }
            other => {
                let mut diagnostic = Diagnostic::error(format!(
                    "`{key}` is a number or a template that renders to one, and this is {}",
                    crate::vars::Kind::of_toml(other).described()
                ))
                .at(at)
                .label("not a number");
                if let RawValue::String(text) = other
                    && text.trim().parse::<f64>().is_ok()
                {
                    diagnostic = diagnostic.help(format!("write the number without quotes: `{key} = {}`", text.trim()));
                }
                self.push(diagnostic);
                None
            }
        }
    }

    fn regex(&mut self, regex: &Spanned<String>, source: &Arc<Source>) -> Option<Regex> {
        match Regex::new(regex.get_ref()) {
            Ok(regex) => Some(regex),
            Err(error) => {
                let reason = error.to_string();
                let reason = reason.lines().last().unwrap_or("invalid").trim().to_owned();
                self.push(Diagnostic::error(format!("invalid regex: {reason}")).at(loc(source, regex)));
                None
            }
        }
    }

    fn window(&mut self, raw: &Spanned<RawWindow>, source: &Arc<Source>) -> Option<WindowSpec> {
        let w = raw.get_ref();
        let timezone = w.timezone.as_ref().map_or_else(|| "UTC".to_owned(), |tz| tz.get_ref().clone());
        if let Some(tz) = &w.timezone
            && crate::window::check_timezone(tz.get_ref()).is_err()
        {
            self.push(
                Diagnostic::error(format!("unknown time zone `{}`", tz.get_ref()))
                    .at(loc(source, tz))
                    .help("use an IANA name such as `Europe/Berlin` or `UTC`"),
            );
        }
        let mut allow = Vec::new();
        for rule in &w.allow {
            match WindowRule::parse(rule.get_ref()) {
                Ok(parsed) => allow.push(parsed),
                Err(reason) => self.push(
                    Diagnostic::error(format!("invalid window `{}`: {reason}", rule.get_ref()))
                        .at(loc(source, rule))
                        .help("write a window as `\"sat 22:00-06:00\"`"),
                ),
            }
        }
        if w.allow.is_empty() {
            self.push(Diagnostic::error("`[window]` has no `allow` rules").at(Location::new(source, raw.span())));
        }
        Some(WindowSpec { timezone, allow })
    }

    fn check(&mut self, raw: &Spanned<RawCheck>, source: &Arc<Source>, names: &Names<'_>) -> Option<Check> {
        let location = Location::new(source, raw.span());
        let c = raw.get_ref();
        let name = Template::new(c.name.get_ref(), Quoting::Plain, Some(loc(source, &c.name)));
        self.template(&name, names);
        self.shell_name(c.shell.as_ref(), source);
        let command = match (&c.run, &c.exec) {
            (Some(run), None) => {
                let shell = c.shell.as_ref().map_or_else(|| "sh".to_owned(), |s| s.get_ref().clone());
                let script = Template::new(run.get_ref(), Quoting::shell(&shell), Some(loc(source, run)));
                Command::Shell { shell, script }
            }
            (None, Some(exec)) => self.exec(exec, source, &location)?,
            _ => {
                self.absent(
                    Diagnostic::error(format!("check `{}` needs exactly one of `run` and `exec`", c.name.get_ref()))
                        .at(location),
                    source,
                    raw.span(),
                );
                return None;
            }
        };
        self.command_names(&command, names);
        let mut expect = Expect::default();
        if let Some(raw_expect) = &c.expect {
            let e = raw_expect.get_ref();
            expect.exit = e.exit.unwrap_or(0);
            if let Some(regex) = &e.regex {
                expect.regex = self.pattern(regex, source);
                if let Some(Pattern::Template(template)) = &expect.regex {
                    self.template(template, names);
                }
            }
            let template = |value: &Option<Spanned<String>>, checker: &mut Checker| {
                value.as_ref().map(|v| {
                    let template = Template::new(v.get_ref(), Quoting::Plain, Some(loc(source, v)));
                    checker.template(&template, names);
                    template
                })
            };
            expect.contains = template(&e.contains, self);
            expect.equals = template(&e.equals, self);
            expect.semver = template(&e.semver, self);
            expect.min = e.min.as_ref().and_then(|min| self.bound("min", min, source, names));
            expect.max = e.max.as_ref().and_then(|max| self.bound("max", max, source, names));
            if let (Some(Bound::Fixed(min)), Some(Bound::Fixed(max))) = (&expect.min, &expect.max)
                && min.as_f64() > max.as_f64()
                && let Some(at) = &e.max
            {
                self.push(
                    Diagnostic::error(format!("`expect` needs at least {min} and at most {max}: nothing passes"))
                        .at(loc(source, at)),
                );
            }
            if let Some(semver) = &expect.semver
                && semver.is_literal()
                && let Err(reason) = crate::version::semver_requirement(&semver.source)
            {
                self.push(
                    Diagnostic::error(reason)
                        .at_opt(semver.location.clone())
                        .label("`expect.semver` must be a semver requirement"),
                );
            }
        }
        let hint = c.hint.as_ref().map(|h| Template::new(h.get_ref(), Quoting::Plain, Some(loc(source, h))));
        if let Some(hint) = &hint {
            self.template(hint, names);
        }
        let guard = c.when.as_ref().map(|w| Guard::new(w.get_ref(), Some(loc(source, w))));
        if let Some(guard) = &guard {
            self.guard(guard, names);
        }
        let cwd = self.optional_template(&c.cwd, source, names);
        let env = self.env(&c.env, source, names);
        let timeout = self.timeout(c.timeout.as_ref(), source).unwrap_or(Duration::from_secs(60));
        let on = c.on.as_ref().and_then(|on| self.names_of(on, source));
        let targets = self.targets(on.as_ref(), false);
        Some(Check { name, command, expect, hint, guard, cwd, env, timeout, targets })
    }

    fn exec(&mut self, exec: &[Spanned<String>], source: &Arc<Source>, at: &Location) -> Option<Command> {
        if exec.is_empty() {
            self.push(Diagnostic::error("`exec` needs at least the program").at(at.clone()));
            return None;
        }
        // `sh -c SCRIPT`, `ssh HOST COMMAND…`: a script, quoted like a `run` string.
        let argv: Vec<&str> = exec.iter().map(|arg| arg.get_ref().as_str()).collect();
        let found = crate::shell::scripts_in_argv(&argv);
        let templates: Vec<Template> = exec
            .iter()
            .enumerate()
            .map(|(i, arg)| {
                let quoting = match found.scripts.iter().find(|(at, _)| *at == i) {
                    Some((_, dialect)) => Quoting::Shell(*dialect),
                    None => Quoting::Plain,
                };
                Template::new(arg.get_ref(), quoting, Some(loc(source, arg)))
            })
            .collect();
        // After a wrapper's option upshift does not know, it cannot tell
        // whether a value reaches a shell: refuse values there.
        if let Some((from, after)) = &found.lost {
            let why = crate::shell::Unsafe::Lost(after.clone());
            for template in templates.iter().skip(*from) {
                self.diagnostics.extend(template.refused_values(&why));
            }
        }
        // `-o ProxyCommand=…`: ssh runs it through a shell of its own.
        for (at, option) in &found.ssh_commands {
            let why = match option {
                Some(option) => crate::shell::Unsafe::SshCommand(option.clone()),
                None => crate::shell::Unsafe::SshOption,
            };
            self.diagnostics.extend(templates[*at].refused_values(&why));
        }
        Some(Command::Exec(templates))
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        raw: &Spanned<RawStep>,
        source: &Arc<Source>,
        dir: &Path,
        scope: Option<&Arc<Scope>>,
        outer: Outer,
        names: &Names<'_>,
        ids: &mut HashMap<String, Location>,
        stack: &mut Vec<PathBuf>,
        out: &mut Vec<Step>,
    ) {
        let location = Location::new(source, raw.span());
        let s = raw.get_ref();
        // A step with a problem is still checked whole: one problem never hides another.
        let Some(id) = &s.id else {
            self.push(
                Diagnostic::error("step has no `id`")
                    .at(location.clone())
                    .help("give every step a unique `id = \"…\"`"),
            );
            self.step_fields(s, source, dir, None, "a step without an id", &location, names);
            return;
        };
        let id_location = loc(source, id);
        if id.get_ref().len() > MAX_ID {
            self.push(
                Diagnostic::error(format!(
                    "step id `{}…` is {} characters long",
                    &id.get_ref()[..24.min(id.get_ref().len())],
                    id.get_ref().len()
                ))
                .at(id_location.clone())
                .label(format!("at most {MAX_ID}")),
            );
        } else if !StepId::is_valid(id.get_ref()) {
            self.push(
                Diagnostic::error(format!("invalid step id `{}`", id.get_ref()))
                    .at(id_location.clone())
                    .label("ids match `[a-z0-9][a-z0-9_-]*`"),
            );
        }
        let full_id = match scope {
            Some(scope) => format!("{}.{}", scope.id, id.get_ref()),
            None => id.get_ref().clone(),
        };
        if let Some(first) = ids.get(&full_id) {
            self.push(
                Diagnostic::error(format!("duplicate step id `{full_id}`"))
                    .at(id_location.clone())
                    .label("used again here")
                    .note(format!("first used at {}", first.describe())),
            );
        } else {
            ids.insert(full_id.clone(), id_location.clone());
        }

        // Exactly one action.
        let actions: Vec<(&str, std::ops::Range<usize>)> = [
            s.run.as_ref().map(|v| ("run", v.span())),
            s.exec.as_ref().map(|v| ("exec", v.first().map_or(0..0, |f| f.span()))),
            s.edit.as_ref().map(|v| ("edit", v.span())),
            s.template.as_ref().map(|v| ("template", v.span())),
            s.pause.as_ref().map(|v| ("pause", v.span())),
            s.include.as_ref().map(|v| ("include", v.span())),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !s.with.is_empty() && s.include.is_none() {
            let (key, _) = s.with.first().expect("not empty");
            self.push(Diagnostic::error("`with` is only for `include` steps").at(loc(source, key)));
        }
        if s.shell.is_some() && s.run.is_none() {
            self.push(Diagnostic::error("`shell` is only for `run` steps").at(id_location.clone()));
        }
        self.shell_name(s.shell.as_ref(), source);

        let guard = s.when.as_ref().map(|w| Guard::new(w.get_ref(), Some(loc(source, w))));
        if let Some(guard) = &guard {
            self.guard(guard, names);
        }
        let mut outer = outer;
        if let Some(guard) = guard {
            outer.guards.push((guard, scope.cloned()));
        }
        // Where it runs: its own `on`, or its include's.
        let on = s.on.as_ref().and_then(|on| self.names_of(on, source));
        let once = s.once.unwrap_or(outer.once);

        if actions.len() != 1 {
            if actions.is_empty() {
                self.absent(
                    Diagnostic::error(format!("step `{full_id}` has no action"))
                        .at(id_location.clone())
                        .help("give it one of `run`, `exec`, `edit`, `template`, `pause`, `include`"),
                    source,
                    raw.span(),
                );
            } else {
                let list: Vec<String> = actions.iter().map(|(name, _)| format!("`{name}`")).collect();
                self.push(
                    Diagnostic::error(format!("step `{full_id}` has {} actions: {}", actions.len(), list.join(", ")))
                        .at(Location::new(source, actions[1].1.clone()))
                        .label("second action")
                        .help("a step does one thing; split it into several steps"),
                );
            }
            // Its other fields are still checked, and later steps may still read it.
            self.step_fields(s, source, dir, None, &full_id, &id_location, names);
            self.seen.push(full_id);
            return;
        }
        if let Some(include) = &s.include {
            if on.is_some() {
                outer.on = on;
            }
            outer.once = once;
            if let Some(serial) = &s.serial {
                if outer.batch.is_some() {
                    self.push(
                        Diagnostic::error("`serial` includes cannot nest")
                            .at(loc(source, serial))
                            .help("roll the outer include, or the inner one"),
                    );
                } else if let Some(count) = self.count(serial, source, "serial", false) {
                    outer.batch = Some(Batch { include: full_id.clone(), serial: count });
                }
            }
            self.include(include, s, source, dir, scope, outer, names, &full_id, ids, stack, out);
            return;
        }
        if let Some(serial) = &s.serial {
            self.push(
                Diagnostic::error("`serial` is only for `include` steps")
                    .at(loc(source, serial))
                    .help("put the steps to roll over the hosts in an included file"),
            );
        }
        let targets = self.targets(on.as_ref().or(outer.on.as_ref()), once);
        let guards = outer.guards;

        let action = if let Some(run) = &s.run {
            let shell = s.shell.as_ref().map_or_else(|| "sh".to_owned(), |s| s.get_ref().clone());
            let script = Template::new(run.get_ref(), Quoting::shell(&shell), Some(loc(source, run)));
            Some(Action::Command(Command::Shell { shell, script }))
        } else if let Some(exec) = &s.exec {
            self.exec(exec, source, &id_location).map(Action::Command)
        } else if let Some(edit) = &s.edit {
            self.edit(edit, source).map(Action::Edit)
        } else if let Some(template) = &s.template {
            self.file_template(template, source, dir).map(Action::Template)
        } else {
            s.pause
                .as_ref()
                .map(|pause| Action::Pause(Template::new(pause.get_ref(), Quoting::Plain, Some(loc(source, pause)))))
        };
        let Some(action) = action else {
            // The action's problem is reported; the rest of the step is still checked.
            self.step_fields(s, source, dir, None, &full_id, &id_location, names);
            self.seen.push(full_id);
            return;
        };
        self.action_names(&action, names);

        let Fields { name, creates, cwd, env, timeout, retry_delay, rollback, read_only } =
            self.step_fields(s, source, dir, Some(&action), &full_id, &id_location, names);
        let is_command = matches!(action, Action::Command(_));
        self.seen.push(full_id.clone());
        out.push(Step {
            id: StepId::new(full_id),
            name,
            action,
            guards,
            creates,
            cwd,
            env,
            timeout,
            retries: s.retries.unwrap_or(0),
            retry_delay,
            rollback,
            idempotent: s.idempotent.unwrap_or(!is_command),
            read_only,
            continue_on_error: s.continue_on_error.unwrap_or(false),
            scope: scope.cloned(),
            location,
            targets,
            batch: outer.batch,
            once,
        });
    }

    /// Checks the fields of a step besides its id and action; `action` is
    /// `None` when it has a problem of its own (what depends on its kind is then left unjudged).
    #[allow(clippy::too_many_arguments)]
    fn step_fields(
        &mut self,
        s: &RawStep,
        source: &Arc<Source>,
        dir: &Path,
        action: Option<&Action>,
        full_id: &str,
        id_location: &Location,
        names: &Names<'_>,
    ) -> Fields {
        let name = self.optional_template(&s.name, source, names);
        let creates = self.optional_template(&s.creates, source, names);
        let cwd = self.optional_template(&s.cwd, source, names);
        let env = self.env(&s.env, source, names);
        let timeout = self.timeout(s.timeout.as_ref(), source);
        let retry_delay = self.duration(s.retry_delay.as_ref(), source).unwrap_or(Duration::from_secs(1));
        let is_command = matches!(action, Some(Action::Command(_)));
        let is_file = matches!(action, Some(Action::Edit(_) | Action::Template(_)));
        let read_only = s.read_only.unwrap_or(false);
        if read_only && action.is_some() && !is_command {
            self.push(
                Diagnostic::error(format!("step `{full_id}` cannot be `read_only`"))
                    .at(id_location.clone())
                    .help("only `run` and `exec` steps are executed during `plan`"),
            );
        }
        if let Some(action) = action.filter(|_| !is_command)
            && (s.retries.is_some() || s.retry_delay.is_some())
        {
            self.push(
                Diagnostic::error(format!(
                    "`retries` only apply to commands, and step `{full_id}` is `{}`",
                    action.kind()
                ))
                .at(id_location.clone()),
            );
        }
        let rollback = match &s.rollback {
            None if is_file => Rollback::Restore,
            None => Rollback::Nothing,
            Some(rollback) => self.rollback(rollback, source, dir, names).unwrap_or(Rollback::Nothing),
        };
        if read_only && !matches!(rollback, Rollback::Nothing) {
            self.push(
                Diagnostic::error(format!("read-only step `{full_id}` has a `rollback`"))
                    .at(id_location.clone())
                    .help("a read-only step changes nothing, so there is nothing to undo"),
            );
        }
        Fields { name, creates, cwd, env, timeout, retry_delay, rollback, read_only }
    }

    #[allow(clippy::too_many_arguments)]
    fn include(
        &mut self,
        include: &Spanned<String>,
        s: &RawStep,
        source: &Arc<Source>,
        dir: &Path,
        scope: Option<&Arc<Scope>>,
        outer: Outer,
        names: &Names<'_>,
        full_id: &str,
        ids: &mut HashMap<String, Location>,
        stack: &mut Vec<PathBuf>,
        out: &mut Vec<Step>,
    ) {
        let at = loc(source, include);
        for (field, given) in [
            ("rollback", s.rollback.is_some()),
            ("creates", s.creates.is_some()),
            ("cwd", s.cwd.is_some()),
            ("timeout", s.timeout.is_some()),
            ("retries", s.retries.is_some()),
            ("read_only", s.read_only.is_some()),
            ("idempotent", s.idempotent.is_some()),
            ("continue_on_error", s.continue_on_error.is_some()),
        ] {
            if given {
                self.push(
                    Diagnostic::error(format!("`{field}` cannot be set on an `include` step"))
                        .at(at.clone())
                        .help("set it on the included steps"),
                );
            }
        }
        let path = normalize(&dir.join(include.get_ref()));
        if let Some(position) = stack.iter().position(|p| *p == path) {
            let mut chain: Vec<String> = stack[position..].iter().map(|p| crate::diagnostic::display_path(p)).collect();
            chain.push(crate::diagnostic::display_path(&path));
            self.push(
                Diagnostic::error(format!("include cycle: {}", chain.join(" → ")))
                    .at(at)
                    .label("includes a file that is already being included"),
            );
            return;
        }
        let Some(inner_source) = self.read(&path, "include", Some(at.clone())) else {
            return;
        };
        let Some(raw) = self.parse::<RawPlaybook>(&inner_source, &[("step", document::piece::<RawStep>)]) else {
            return;
        };
        self.format(&raw, &inner_source, false);
        let forbidden = [
            ("name", raw.name.as_ref().map(|n| n.span())),
            ("requires", raw.requires.as_ref().map(|n| n.span())),
            ("version", raw.version.as_ref().map(|n| n.span())),
            ("window", raw.window.as_ref().map(|n| n.span())),
            ("check", raw.check.first().map(|n| n.span())),
            ("finally", raw.finally.first().map(|n| n.span())),
        ];
        for (key, span) in forbidden {
            if let Some(span) = span {
                self.push(
                    Diagnostic::error(format!("an included file cannot have `{key}`"))
                        .at(Location::new(&inner_source, span))
                        .help("an include has `format`, `description`, `[params]` and `[[step]]`s"),
                );
            }
        }
        if let Some((name, value)) = raw.vars.first() {
            self.push(
                Diagnostic::error(format!("an included file cannot have `[vars]` (`{name}`)"))
                    .at(Location::new(&inner_source, value.span()))
                    .help("declare `[params]` and pass values with `with`"),
            );
        }
        if let Some((name, secret)) = raw.secrets.first() {
            self.push(
                Diagnostic::error(format!("an included file cannot declare secrets (`{name}`)"))
                    .at(Location::new(&inner_source, secret.span())),
            );
        }
        // Parameters: the include's defaults, overridden by `with`. A default's
        // type is the parameter's (unless the default is one expression).
        let mut params: IndexMap<String, serde_json::Value> =
            raw.params.iter().map(|(k, v)| (k.clone(), to_json(v.get_ref()))).collect();
        // Defaults are rendered in the including scope: what they read counts as read.
        for value in params.values() {
            if let serde_json::Value::String(text) = value
                && let Ok(used) = Template::new(text, Quoting::Plain, None).analyze()
            {
                for name in used {
                    self.note_read(&name);
                }
            }
        }
        let kinds: IndexMap<String, Kind> = raw
            .params
            .iter()
            .filter(|(_, v)| !matches!(v.get_ref(), RawValue::String(t) if crate::vars::is_one_expression(t)))
            .map(|(k, v)| (k.clone(), Kind::of_toml(v.get_ref())))
            .collect();
        for (key, value) in &s.with {
            if !raw.params.contains_key(key.get_ref()) {
                let mut diagnostic =
                    Diagnostic::error(format!("`{}` is not a parameter of `{}`", key.get_ref(), include.get_ref()))
                        .at(loc(source, key));
                diagnostic = match did_you_mean(key.get_ref(), raw.params.keys().map(String::as_str)) {
                    Some(close) => diagnostic.help(format!("did you mean `{close}`?")),
                    None if raw.params.is_empty() => diagnostic.help("that file declares no `[params]`"),
                    None => diagnostic.help(format!(
                        "its parameters are {}",
                        raw.params.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                    )),
                };
                self.push(diagnostic);
                continue;
            }
            let json = to_json(value.get_ref());
            self.value_names(&json, Some(loc(source, value)), names);
            // One expression keeps its value's type: checked once rendered.
            let deferred = matches!(value.get_ref(), RawValue::String(t) if crate::vars::is_one_expression(t));
            let given = Kind::of_toml(value.get_ref());
            if let Some(kind) = kinds.get(key.get_ref())
                && !deferred
                && !kind.accepts(given)
            {
                let declared = &raw.params[key.get_ref()];
                self.push(
                    Diagnostic::error(format!(
                        "parameter `{}` is {}, and this is {}",
                        key.get_ref(),
                        kind.described(),
                        given.described()
                    ))
                    .at(loc(source, value))
                    .label(format!("{} here", given.described()))
                    .note(format!(
                        "`{}` is declared as {} at {}",
                        key.get_ref(),
                        kind.described(),
                        Location::new(&inner_source, declared.span()).describe()
                    )),
                );
                continue;
            }
            let json = match kinds.get(key.get_ref()) {
                Some(kind) if !deferred => kind.fit(json),
                _ => json,
            };
            params.insert(key.get_ref().clone(), json);
        }
        let new_scope = Arc::new(Scope {
            id: full_id.to_owned(),
            parent: scope.cloned(),
            params: params.clone(),
            kinds,
            location: Location::new(source, include.span()),
        });
        let mut inner_params = names.params.clone();
        inner_params.extend(params.keys().cloned());
        let inner_names = Names {
            vars: names.vars,
            params: inner_params,
            secrets: names.secrets,
            requirements: names.requirements,
            has_version: names.has_version,
            steps_visible: true,
        };
        let inner_dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| dir.to_path_buf());
        stack.push(path);
        for step in &raw.step {
            self.step(step, &inner_source, &inner_dir, Some(&new_scope), outer.clone(), &inner_names, ids, stack, out);
        }
        stack.pop();
    }

    fn edit(&mut self, raw: &Spanned<RawEdit>, source: &Arc<Source>) -> Option<Edit> {
        let e = raw.get_ref();
        let location = Location::new(source, raw.span());
        self.path_given(&e.path, source, "edit.path");
        let path = Template::new(e.path.get_ref(), Quoting::Plain, Some(loc(source, &e.path)));
        let count = [e.json.is_some(), e.toml.is_some(), e.line.is_some()].iter().filter(|x| **x).count();
        if count != 1 {
            self.absent(
                Diagnostic::error(format!("`edit` needs exactly one of `json`, `toml`, `line`, found {count}"))
                    .at(location),
                source,
                raw.span(),
            );
            return None;
        }
        let kind = if let Some(json) = &e.json {
            let mut entries = Vec::new();
            for (pointer, value) in json {
                if !pointer.get_ref().is_empty() && !pointer.get_ref().starts_with('/') {
                    self.push(
                        Diagnostic::error(format!("`{}` is not a JSON pointer", pointer.get_ref()))
                            .at(loc(source, pointer))
                            .help("a JSON pointer starts with `/`; `~1` stands for `/` inside a key"),
                    );
                    continue;
                }
                let pointer = Template::new(pointer.get_ref(), Quoting::Pointer, Some(loc(source, pointer)));
                entries.push((pointer, to_json(value.get_ref())));
            }
            EditKind::Json(entries)
        } else if let Some(toml) = &e.toml {
            let mut entries = Vec::new();
            for (key, value) in toml {
                let path = key_segments(key.get_ref());
                if path.iter().any(|segment| segment.is_empty()) {
                    self.push(
                        Diagnostic::error(format!("`{}` is not a dotted key", key.get_ref())).at(loc(source, key)),
                    );
                    continue;
                }
                let path = path.into_iter().map(|k| Template::new(k, Quoting::Plain, Some(loc(source, key)))).collect();
                entries.push((path, to_json(value.get_ref())));
            }
            EditKind::Toml(entries)
        } else if let Some(line) = &e.line {
            let l = line.get_ref();
            let regex = self.pattern(&l.regex, source)?;
            let missing = match &l.missing {
                None => Missing::Fail,
                Some(missing) => match missing.get_ref().as_str() {
                    "fail" => Missing::Fail,
                    "append" => Missing::Append,
                    "ignore" => Missing::Ignore,
                    other => {
                        let known = ["fail", "append", "ignore"];
                        let mut diagnostic = Diagnostic::error(format!("unknown `missing` value `{other}`"))
                            .at(loc(source, missing))
                            .label("what to do when no line matches");
                        diagnostic = match did_you_mean(other, known) {
                            Some(close) => diagnostic.help(format!("did you mean `{close}`?")),
                            None => diagnostic.help("write `\"fail\"` (the default), `\"append\"` or `\"ignore\"`"),
                        };
                        self.push(diagnostic);
                        return None;
                    }
                },
            };
            let replace = Template::new(l.replace.get_ref(), Quoting::Replacement, Some(loc(source, &l.replace)));
            if replace.text_has(['\n', '\r']) {
                self.push(
                    Diagnostic::error("`replace` has a line break, and a line edit writes one line")
                        .at(loc(source, &l.replace))
                        .help("edit each line with its own `regex`, or write the file with `template`"),
                );
                return None;
            }
            if missing == Missing::Append
                && let Some(group) = group_reference(l.replace.get_ref())
            {
                self.push(
                    Diagnostic::error(format!("`replace` refers to the capture group `{group}`, and `missing = \"append\"` adds it where no line matched"))
                        .at(loc(source, &l.replace))
                        .label("a line added when nothing matched has no groups")
                        .help("write the whole line without `$` groups (`$$` is a literal `$`)"),
                );
                return None;
            }
            EditKind::Line { regex, replace, missing }
        } else {
            return None;
        };
        Some(Edit { path, kind })
    }

    fn file_template(&mut self, raw: &Spanned<RawTemplate>, source: &Arc<Source>, dir: &Path) -> Option<FileTemplate> {
        let t = raw.get_ref();
        self.path_given(&t.dest, source, "template.dest");
        self.path_given(&t.src, source, "template.src");
        if t.src.get_ref().trim().is_empty() {
            return None;
        }
        let src_path = dir.join(t.src.get_ref());
        let text = self.read(&src_path, "template source", Some(loc(source, &t.src)))?;
        let content = Template::new(&text.text, Quoting::Plain, Some(Location::new(&text, 0..text.text.len())));
        let mode = match &t.mode {
            None => None,
            Some(mode) => match u32::from_str_radix(mode.get_ref(), 8) {
                Ok(mode) if mode <= 0o7777 => Some(mode),
                _ => {
                    self.push(
                        Diagnostic::error(format!("invalid file mode `{}`", mode.get_ref()))
                            .at(loc(source, mode))
                            .help("write an octal mode such as `\"0644\"`"),
                    );
                    None
                }
            },
        };
        Some(FileTemplate {
            src: t.src.get_ref().clone(),
            content,
            dest: Template::new(t.dest.get_ref(), Quoting::Plain, Some(loc(source, &t.dest))),
            mode,
        })
    }

    fn rollback(
        &mut self,
        raw: &Spanned<RawRollback>,
        source: &Arc<Source>,
        dir: &Path,
        names: &Names<'_>,
    ) -> Option<Rollback> {
        let location = Location::new(source, raw.span());
        match raw.get_ref() {
            RawRollback::Bool(false) => Some(Rollback::Irreversible),
            RawRollback::Bool(true) => {
                self.push(
                    Diagnostic::error("`rollback = true` says nothing about how to undo the step")
                        .at(location)
                        .help("give a command, a table with one action, or `false` for a step that cannot be undone"),
                );
                None
            }
            RawRollback::Run(script) => {
                let script = Template::new(script, Quoting::shell("sh"), Some(location));
                self.template(&script, names);
                Some(Rollback::Action {
                    action: Box::new(Action::Command(Command::Shell { shell: "sh".to_owned(), script })),
                    guard: None,
                    cwd: None,
                    env: Vec::new(),
                    timeout: None,
                })
            }
            RawRollback::Table(table) => {
                self.shell_name(table.shell.as_ref(), source);
                let count = [table.run.is_some(), table.exec.is_some(), table.edit.is_some(), table.template.is_some()]
                    .iter()
                    .filter(|x| **x)
                    .count();
                if count != 1 {
                    self.absent(
                        Diagnostic::error(format!(
                            "a `rollback` table needs exactly one of `run`, `exec`, `edit`, `template`, found {count}"
                        ))
                        .at(location),
                        source,
                        raw.span(),
                    );
                    return None;
                }
                let action = if let Some(run) = &table.run {
                    let shell = table.shell.as_ref().map_or_else(|| "sh".to_owned(), |s| s.get_ref().clone());
                    let script = Template::new(run.get_ref(), Quoting::shell(&shell), Some(loc(source, run)));
                    Action::Command(Command::Shell { shell, script })
                } else if let Some(exec) = &table.exec {
                    Action::Command(self.exec(exec, source, &location)?)
                } else if let Some(edit) = &table.edit {
                    Action::Edit(self.edit(edit, source)?)
                } else if let Some(template) = &table.template {
                    Action::Template(self.file_template(template, source, dir)?)
                } else {
                    return None;
                };
                self.action_names(&action, names);
                let guard = table.when.as_ref().map(|w| Guard::new(w.get_ref(), Some(loc(source, w))));
                if let Some(guard) = &guard {
                    self.guard(guard, names);
                }
                let cwd = self.optional_template(&table.cwd, source, names);
                let env = self.env(&table.env, source, names);
                let timeout = self.timeout(table.timeout.as_ref(), source);
                Some(Rollback::Action { action: Box::new(action), guard, cwd, env, timeout })
            }
        }
    }

    fn optional_template(
        &mut self,
        raw: &Option<Spanned<String>>,
        source: &Arc<Source>,
        names: &Names<'_>,
    ) -> Option<Template> {
        raw.as_ref().map(|value| {
            let template = Template::new(value.get_ref(), Quoting::Plain, Some(loc(source, value)));
            self.template(&template, names);
            template
        })
    }

    fn env(
        &mut self,
        raw: &IndexMap<String, Spanned<String>>,
        source: &Arc<Source>,
        names: &Names<'_>,
    ) -> Vec<(String, Template)> {
        raw.iter()
            .map(|(key, value)| {
                if key.is_empty() || key.contains(['=', '\0']) {
                    self.push(
                        Diagnostic::error(format!("`{}` cannot be an environment variable's name", key.escape_debug()))
                            .at(loc(source, value))
                            .help("a name is not empty and holds no `=` and no NUL byte"),
                    );
                }
                if value.get_ref().contains('\0') {
                    self.push(
                        Diagnostic::error(format!("the value of `{}` holds a NUL byte", key.escape_debug()))
                            .at(loc(source, value))
                            .help("no command can receive a NUL byte in its environment"),
                    );
                }
                let template = Template::new(value.get_ref(), Quoting::Plain, Some(loc(source, value)));
                self.template(&template, names);
                (key.clone(), template)
            })
            .collect()
    }

    /// A `shell` must name a program.
    fn shell_name(&mut self, raw: Option<&Spanned<String>>, source: &Arc<Source>) {
        if let Some(shell) = raw
            && (shell.get_ref().trim().is_empty() || shell.get_ref().contains('\0'))
        {
            self.push(
                Diagnostic::error("`shell` names no program")
                    .at(loc(source, shell))
                    .help("write the shell to run `run` with, e.g. `\"bash\"`, or leave it out for `sh`"),
            );
        }
    }

    /// A path a step writes must not be empty.
    fn path_given(&mut self, raw: &Spanned<String>, source: &Arc<Source>, what: &str) {
        if raw.get_ref().trim().is_empty() {
            self.push(Diagnostic::error(format!("`{what}` is empty")).at(loc(source, raw)).help("name the file"));
        }
    }

    /// A timeout: a duration long enough to run a command in.
    fn timeout(&mut self, raw: Option<&Spanned<String>>, source: &Arc<Source>) -> Option<Duration> {
        let timeout = self.duration(raw, source)?;
        if timeout < MIN_TIMEOUT {
            self.push(
                Diagnostic::error(format!("a timeout of `{}` is too short to run anything", raw?.get_ref()))
                    .at(loc(source, raw?))
                    .label("at least 100ms")
                    .help("write e.g. `\"90s\"` or `\"30m\"`"),
            );
            return None;
        }
        Some(timeout)
    }

    fn duration(&mut self, raw: Option<&Spanned<String>>, source: &Arc<Source>) -> Option<Duration> {
        let raw = raw?;
        match humantime::parse_duration(raw.get_ref()) {
            Ok(duration) if !duration.is_zero() => Some(duration),
            Ok(_) => {
                self.push(
                    Diagnostic::error("a duration of zero")
                        .at(loc(source, raw))
                        .help("write e.g. `\"90s\"` or `\"30m\"`"),
                );
                None
            }
            Err(error) => {
                self.push(
                    Diagnostic::error(format!("invalid duration `{}`: {error}", raw.get_ref()))
                        .at(loc(source, raw))
                        .help("write e.g. `\"90s\"`, `\"30m\"` or `\"1h 30m\"`"),
                );
                None
            }
        }
    }

    fn action_names(&mut self, action: &Action, names: &Names<'_>) {
        match action {
            Action::Command(command) => self.command_names(command, names),
            Action::Edit(edit) => {
                self.template(&edit.path, names);
                match &edit.kind {
                    EditKind::Json(entries) => {
                        for (pointer, value) in entries {
                            self.template(pointer, names);
                            self.value_names(value, edit.path.location.clone(), names);
                        }
                    }
                    EditKind::Toml(entries) => {
                        for (path, value) in entries {
                            for key in path {
                                self.template(key, names);
                            }
                            self.value_names(value, edit.path.location.clone(), names);
                        }
                    }
                    EditKind::Line { regex, replace, .. } => {
                        if let Pattern::Template(regex) = regex {
                            self.template(regex, names);
                        }
                        self.template(replace, names);
                    }
                }
            }
            Action::Template(template) => {
                self.template(&template.dest, names);
                self.template(&template.content, names);
            }
            Action::Pause(message) => self.template(message, names),
        }
    }

    fn command_names(&mut self, command: &Command, names: &Names<'_>) {
        match command {
            Command::Shell { script, .. } => self.template(script, names),
            Command::Exec(argv) => {
                for arg in argv {
                    self.template(arg, names);
                }
            }
        }
    }

    /// Checks the templates inside a value (every string in it is one).
    fn value_names(&mut self, value: &serde_json::Value, location: Option<Location>, names: &Names<'_>) {
        match value {
            serde_json::Value::String(text) => {
                self.template(&Template::new(text, Quoting::Plain, location), names);
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    self.value_names(item, location.clone(), names);
                }
            }
            serde_json::Value::Object(map) => {
                for item in map.values() {
                    self.value_names(item, location.clone(), names);
                }
            }
            _ => {}
        }
    }

    fn template(&mut self, template: &Template, names: &Names<'_>) {
        match template.analyze() {
            Ok(used) => {
                self.names_used(&used, template, names);
                self.diagnostics.extend(template.shell_problems());
                self.diagnostics.extend(template.secret_problems());
            }
            Err(diagnostics) => self.diagnostics.extend(diagnostics),
        }
    }

    fn names_used(&mut self, used: &[String], template: &Template, names: &Names<'_>) {
        for name in used {
            self.note_read(name);
        }
        let steps: &[String] = if names.steps_visible { &self.seen } else { &[] };
        let found: Vec<Diagnostic> = used
            .iter()
            .filter_map(|name| undeclared(name, names, steps).map(|d| d.at_opt(locate_name(template, name))))
            .collect();
        self.diagnostics.extend(found);
    }

    fn guard(&mut self, guard: &Guard, names: &Names<'_>) {
        match guard.analyze() {
            Ok(used) => {
                let template = Template::new(&guard.source, Quoting::Plain, guard.location.clone());
                self.names_used(&used, &template, names);
                // `plan` decides guards without secret values, and `run` must
                // decide as `plan` said: a guard never reads a secret.
                let secret = used
                    .iter()
                    .find(|name| *name == "secrets" || name.starts_with("secrets."))
                    .cloned()
                    .or_else(|| crate::template::secret_read(&guard.source).map(|name| format!("secrets.{name}")));
                if let Some(secret) = secret {
                    self.push(
                        Diagnostic::error(format!("guard `{}` reads `{secret}`", guard.source))
                            .at_opt(locate_name(&template, &secret))
                            .label("guards are decided without secret values")
                            .help("decide on a var or an earlier step's output, or test the secret inside the command"),
                    );
                }
            }
            Err(diagnostic) => self.push(diagnostic),
        }
    }
}

/// Why `name` (dotted, as minijinja lists it) is not declared, if it is not.
fn undeclared(name: &str, names: &Names<'_>, steps: &[String]) -> Option<Diagnostic> {
    let mut parts = name.split('.');
    let first = parts.next().unwrap_or(name);
    let second = parts.next();
    let is_param = names.params.iter().any(|p| p == first);
    if is_param || (names.vars.contains(first) && !BUILTINS.contains(&first)) {
        return None;
    }
    let unknown_member = |kind: &str, member: &str, known: Vec<&str>| {
        let mut diagnostic = Diagnostic::error(format!("undeclared {kind} `{member}`")).label("not declared");
        if let Some(close) = did_you_mean(member, known.iter().copied()) {
            diagnostic = diagnostic.help(format!("did you mean `{close}`?"));
        } else if known.is_empty() {
            diagnostic = diagnostic.help(format!("this playbook declares no {kind}s"));
        } else {
            diagnostic = diagnostic
                .help(format!("declared: {}", known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")));
        }
        Some(diagnostic)
    };
    match (first, second) {
        ("vars", Some(var)) if !names.vars.contains(var) => {
            unknown_member("variable", var, names.vars.iter().map(String::as_str).collect())
        }
        ("secrets", Some(secret)) if !names.secrets.contains(secret) => {
            unknown_member("secret", secret, names.secrets.iter().map(String::as_str).collect())
        }
        ("requirements", Some(key)) if !names.requirements.contains(key) => {
            unknown_member("requirement", key, names.requirements.iter().map(String::as_str).collect())
        }
        ("version", _) if !names.has_version => Some(
            Diagnostic::error("`version` is used, but the playbook has no `[version]` table")
                .label("needs `[version]`")
                .help("declare `[version]` with `current`, `available` and `target`"),
        ),
        ("version", Some(field)) if !VERSION_FIELDS.contains(&field) => {
            unknown_member("version field", field, VERSION_FIELDS.to_vec())
        }
        ("version", Some("current" | "target")) => match parts.next() {
            Some(attribute) if !VERSION_ATTRIBUTES.contains(&attribute) => {
                unknown_member("version attribute", attribute, VERSION_ATTRIBUTES.to_vec())
            }
            _ => None,
        },
        ("env", Some(field)) if field != "name" => unknown_member("environment field", field, vec!["name"]),
        ("run", Some(field)) if !RUN_FIELDS.contains(&field) => unknown_member("run field", field, RUN_FIELDS.to_vec()),
        ("host", Some(field)) if !crate::vars::HOST_FIELDS.contains(&field) => {
            unknown_member("host field", field, crate::vars::HOST_FIELDS.to_vec())
        }
        ("step", _) if !names.steps_visible => Some(
            Diagnostic::error("`step` is only known inside a step")
                .label("not a step")
                .help("`step.id`, `step.attempt` and `step.interrupted` describe the step being run"),
        ),
        ("step", Some(field)) if !CURRENT_STEP_FIELDS.contains(&field) => {
            unknown_member("step field", field, CURRENT_STEP_FIELDS.to_vec())
        }
        ("steps", Some(_)) => {
            let rest: Vec<&str> = name.split('.').skip(1).collect();
            // Included ids hold dots: try the longest id that prefixes the path.
            let found = (1..=rest.len()).rev().find(|n| steps.iter().any(|id| *id == rest[..*n].join(".")));
            match found {
                Some(n) => match rest.get(n) {
                    Some(field) if !STEP_FIELDS.contains(field) => {
                        unknown_member("step field", field, STEP_FIELDS.to_vec())
                    }
                    _ => None,
                },
                None => {
                    let id = rest[0];
                    let mut diagnostic = Diagnostic::error(format!("`steps.{id}` is not an earlier step"))
                        .label("no step with this id runs before here");
                    if let Some(close) = did_you_mean(id, steps.iter().map(String::as_str)) {
                        diagnostic = diagnostic.help(format!("did you mean `{close}`?"));
                    } else {
                        diagnostic = diagnostic.help("a step can read the results of steps before it");
                    }
                    Some(diagnostic)
                }
            }
        }
        (builtin, _) if BUILTINS.contains(&builtin) => None,
        _ => {
            let candidates: Vec<&str> = names
                .vars
                .iter()
                .map(String::as_str)
                .chain(names.params.iter().map(String::as_str))
                .chain(BUILTINS)
                .collect();
            let mut diagnostic = Diagnostic::error(format!("undeclared variable `{first}`")).label("not declared");
            diagnostic = match did_you_mean(first, candidates.iter().copied()) {
                Some(close) => diagnostic.help(format!("did you mean `{close}`?")),
                None => diagnostic.help(format!("declare it in `[vars]`: `{first} = …`")),
            };
            Some(diagnostic)
        }
    }
}

/// Does the text hold template syntax (`{{`, `{%` or `{#`)?
fn has_template_syntax(text: &str) -> bool {
    ["{{", "{%", "{#"].iter().any(|d| text.contains(d))
}

/// The first capture-group reference (`$1`, `${name}`, `$name`) in the text
/// outside `{{ … }}`, `{% … %}` and `{# … #}`.
fn group_reference(template: &str) -> Option<String> {
    let mut rest = template;
    let mut literal = String::new();
    while let Some(start) = ["{{", "{%", "{#"].iter().filter_map(|d| rest.find(d)).min() {
        literal.push_str(&rest[..start]);
        let close = match &rest[start..start + 2] {
            "{{" => "}}",
            "{%" => "%}",
            _ => "#}",
        };
        rest = rest[start + 2..].find(close).map_or("", |end| &rest[start + 2 + end + 2..]);
        literal.push('\0');
    }
    literal.push_str(rest);
    let bytes = literal.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            match bytes.get(i + 1) {
                Some(b'$') => i += 2,
                Some(b) if b.is_ascii_alphanumeric() || *b == b'_' || *b == b'{' => {
                    let end = literal[i + 1..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '{' || c == '}'))
                        .map_or(literal.len(), |n| i + 1 + n);
                    return Some(literal[i..end].to_owned());
                }
                _ => i += 1,
            }
        } else {
            i += 1;
        }
    }
    None
}

/// A secret's source as owned data (the environment's and the playbook's merge).
#[derive(Debug, Clone)]
struct RawSecretOwned {
    env: Option<String>,
    file: Option<String>,
    command: Option<Vec<String>>,
    required: Option<bool>,
}

fn owned_secret(secret: &Spanned<RawSecret>) -> Spanned<RawSecretOwned> {
    let s = secret.get_ref();
    Spanned::new(
        secret.span(),
        RawSecretOwned { env: s.env.clone(), file: s.file.clone(), command: s.command.clone(), required: s.required },
    )
}

fn loc<T>(source: &Arc<Source>, spanned: &Spanned<T>) -> Location {
    Location::new(source, spanned.span())
}

/// TOML values as JSON values (datetimes become strings).
pub(crate) fn to_json(value: &RawValue) -> serde_json::Value {
    match value {
        RawValue::String(s) => serde_json::Value::String(s.clone()),
        RawValue::Integer(i) => serde_json::Value::from(*i),
        RawValue::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        RawValue::Boolean(b) => serde_json::Value::Bool(*b),
        RawValue::Datetime(d) => serde_json::Value::String(d.to_string()),
        RawValue::Array(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        RawValue::Table(table) => {
            serde_json::Value::Object(table.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

fn list_environments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            (path.extension().is_some_and(|e| e == "toml"))
                .then(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .flatten()
        })
        .collect();
    names.sort();
    names
}

/// `path` made absolute against the working directory (without touching the disk).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        normalize(path)
    } else {
        normalize(&std::env::current_dir().unwrap_or_default().join(path))
    }
}

/// Removes `.` and `..` components lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The keys of a dotted key path, split at the dots outside `{{ … }}` and
/// `{% … %}` (a value with a dot stays one key).
fn key_segments(key: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let mut start = 0;
    let mut closer: Option<&str> = None;
    let mut at = 0;
    while at < key.len() {
        let rest = &key[at..];
        match closer {
            Some(close) if rest.starts_with(close) => {
                closer = None;
                at += 2;
            }
            Some(_) => at += rest.chars().next().map_or(1, char::len_utf8),
            None if rest.starts_with("{{") => {
                closer = Some("}}");
                at += 2;
            }
            None if rest.starts_with("{%") => {
                closer = Some("%}");
                at += 2;
            }
            None => {
                if rest.starts_with('.') {
                    segments.push(&key[start..at]);
                    start = at + 1;
                }
                at += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    segments.push(&key[start..]);
    segments
}
