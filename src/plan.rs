//! `plan`: binds a checked playbook to a context and renders every step. It
//! runs only what is read-only by contract (version probes, readiness checks,
//! `read_only` steps), evaluates guards it can know, and computes the diff of
//! every file an `edit` or `template` would change, without touching it.
//!
//! The `Plan` is data: reporters print it, `diff` compares two of them, and the
//! engine executes the very same rendered steps.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cli::SelectionArgs;
use crate::context::{Context, StepInfo, StepResult, render_value};
use crate::diagnostic::Diagnostic;
use crate::edit;
use crate::playbook::{Action, Check, Command, EditKind, Missing, Playbook, Rollback, SecretSource, Step, VersionSpec};
use crate::process::CommandSpec;
use crate::secrets::Masker;
use crate::select::{self, Selection};
use crate::template::{RenderError, Template};
use crate::transport::{Targets, Transport};
use crate::window::Verdict;

/// The JSON shape's version; bump on incompatible changes.
pub(crate) const PLAN_FORMAT: u32 = 1;

/// Options of one plan.
#[derive(Debug, Clone, Default)]
pub(crate) struct PlanOptions {
    pub(crate) selection: SelectionArgs,
    /// Run readiness checks (false for `diff`, which compares definitions).
    pub(crate) execute: bool,
    /// Run `read_only` steps (`plan`, and `diff`, so that guards reading their
    /// output decide as in `plan`); `run` executes them as steps of the run.
    pub(crate) execute_read_only: bool,
    /// The instant the window is judged at.
    pub(crate) now: Option<jiff::Timestamp>,
    /// Secret values (`run` only): readiness checks and probes get them; what
    /// is shown stays masked. Without them, a check that needs a secret is not run.
    pub(crate) secrets: Option<std::collections::BTreeMap<String, String>>,
    /// A version choice made before (a saved plan's): it is bound as it is,
    /// never made again; the probes still run, and `Plan::probed` says what they read.
    pub(crate) recorded: Option<Selection>,
}

/// What the version probes read when the choice was recorded before.
#[derive(Debug, Clone)]
pub(crate) struct Probed {
    pub(crate) current: Result<String, String>,
    pub(crate) available: Result<Vec<String>, String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Plan {
    pub(crate) v: u32,
    pub(crate) playbook: String,
    pub(crate) description: Option<String>,
    pub(crate) file: String,
    /// Where the steps run: `local`, or `fleet of N hosts`.
    pub(crate) target: String,
    /// The fleet's hosts (empty: everything runs on this machine).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) hosts: Vec<PlannedHost>,
    pub(crate) environment: Option<String>,
    pub(crate) fingerprint: String,
    pub(crate) vars: IndexMap<String, serde_json::Value>,
    pub(crate) secrets: Vec<SecretStatus>,
    pub(crate) version: Option<VersionPlan>,
    pub(crate) window: Option<Verdict>,
    pub(crate) checks: Vec<CheckResult>,
    pub(crate) steps: Vec<PlannedStep>,
    pub(crate) finally: Vec<PlannedStep>,
    /// False when a readiness check or a read-only step failed: `run` would stop (exit 3).
    pub(crate) ready: bool,
    /// The current version is already the one to have: nothing will run.
    pub(crate) up_to_date: bool,
    /// The version choice itself, for `run` to journal.
    #[serde(skip)]
    pub(crate) selection: Option<Selection>,
    /// With a recorded choice: what the probes read now.
    #[serde(skip)]
    pub(crate) probed: Option<Probed>,
}

/// A host of the fleet, as the plan shows it.
#[derive(Debug, Serialize)]
pub(crate) struct PlannedHost {
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) roles: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SecretStatus {
    pub(crate) name: String,
    /// Where it comes from (`env MAGENTO_PUBLIC_KEY`), never its value.
    pub(crate) source: String,
    /// `true`/`false` when it can be told without reading the value; `null` for commands.
    pub(crate) present: Option<bool>,
    /// Its environment variable is set, to nothing (not present either).
    pub(crate) empty: bool,
    pub(crate) required: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct VersionPlan {
    pub(crate) scheme: crate::version::Scheme,
    pub(crate) current: String,
    pub(crate) target_requirement: Option<String>,
    /// Newest first, ten at most.
    pub(crate) candidates: Vec<String>,
    pub(crate) candidates_total: usize,
    pub(crate) selected: String,
    pub(crate) reason: String,
    pub(crate) change: String,
    pub(crate) passed_over: Vec<String>,
    pub(crate) requirements: IndexMap<String, String>,
    /// The `[[version.matrix]]` row the requirements came from.
    pub(crate) matrix_row: Option<String>,
    /// No available version is newer and the current one satisfies the target.
    pub(crate) up_to_date: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct CheckResult {
    pub(crate) name: String,
    pub(crate) command: String,
    /// `passed`, `failed`, `skipped` or `not-run`.
    pub(crate) status: &'static str,
    /// What was seen (trimmed first line of output, or why it failed).
    pub(crate) observed: String,
    pub(crate) hint: Option<String>,
    /// In a fleet: the host it ran on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) host: Option<String>,
}

/// What will happen to a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Status {
    WillRun,
    Skipped,
    DecidedAtRunTime,
}

#[derive(Debug, Serialize)]
pub(crate) struct PlannedStep {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) status: Status,
    pub(crate) reason: Option<String>,
    pub(crate) action: PlannedAction,
    pub(crate) cwd: Option<String>,
    pub(crate) env: IndexMap<String, String>,
    pub(crate) timeout: Option<String>,
    pub(crate) retries: u32,
    pub(crate) retry_delay: Option<String>,
    pub(crate) rollback: PlannedRollback,
    pub(crate) point_of_no_return: bool,
    pub(crate) read_only: bool,
    pub(crate) idempotent: bool,
    pub(crate) continue_on_error: bool,
    /// Hash of the rendered definition; `resume` compares it.
    pub(crate) fingerprint: String,
    /// The output of a read-only step executed by the plan.
    pub(crate) output: Option<StepResult>,
    /// In a fleet: the hosts this rendering is for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) hosts: Vec<String>,
    /// In a fleet: the hosts where the step renders differently, grouped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) per_host: Vec<PlannedStep>,
    /// Runs on the first targeted host only, once per run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) once: bool,
    /// Rolling batches: `2 hosts at a time, with the steps of `deploy``.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rolling: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum PlannedAction {
    Run { shell: String, command: String },
    Exec { argv: Vec<String> },
    Edit { path: String, set: Vec<String>, diff: Option<String>, note: Option<String> },
    Template { src: String, dest: String, mode: Option<String>, diff: Option<String>, note: Option<String> },
    Pause { message: String },
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum PlannedRollback {
    /// Nothing to undo.
    None,
    /// The file is restored from its snapshot.
    Restore,
    /// Cannot be undone.
    Irreversible,
    Action {
        action: Box<PlannedAction>,
        when: Option<String>,
        cwd: Option<String>,
        env: IndexMap<String, String>,
        timeout: Option<String>,
    },
}

/// Why a plan could not be made.
#[derive(Debug)]
pub(crate) enum PlanError {
    /// A template or guard failed to render (exit 2).
    Invalid(Vec<Diagnostic>),
    /// Version selection failed; `usage` for a bad `--to` (exit 2), else exit 3.
    Version { message: String, usage: bool },
    /// A signal (named) stopped the plan; what it ran was stopped too (exit 130).
    Interrupted(&'static str),
}

impl From<RenderError> for PlanError {
    fn from(error: RenderError) -> PlanError {
        PlanError::Invalid(vec![error.into_diagnostic()])
    }
}

pub(crate) fn plan(playbook: &Playbook, options: &PlanOptions, targets: &Targets) -> Result<Plan, PlanError> {
    let masker = options.secrets.as_ref().map(Masker::new).unwrap_or_default();
    let planner = Planner { playbook, targets, options, masker };
    planner.plan()
}

struct Planner<'a> {
    playbook: &'a Playbook,
    targets: &'a Targets,
    options: &'a PlanOptions,
    /// Masks the secrets (when `run` gave them) in everything commands print.
    masker: Masker,
}

/// How a masked secret shows in a rendered text (`<secret:NAME>`).
const SECRET_MARK: &str = "<secret:";

/// Stops the plan when a signal arrived while it ran something.
fn interrupted() -> Result<(), PlanError> {
    match crate::process::signals::pending() {
        Some(signal) => Err(PlanError::Interrupted(crate::process::signals::name(signal))),
        None => Ok(()),
    }
}

impl Planner<'_> {
    fn plan(&self) -> Result<Plan, PlanError> {
        if let (Some(spec), Some(recorded)) = (&self.playbook.version, &self.options.recorded) {
            let probed = self.probe(spec)?;
            let mut plan = self.render(Some(recorded.clone()))?;
            plan.probed = Some(probed);
            return Ok(plan);
        }
        let selection = match &self.playbook.version {
            Some(spec) => Some(self.select(spec)?),
            None => None,
        };
        if selection.as_ref().is_some_and(|s| s.up_to_date) {
            // Nothing will run: nothing is executed to plan it either.
            let quiet = PlanOptions { execute: false, execute_read_only: false, ..self.options.clone() };
            let planner = Planner {
                playbook: self.playbook,
                targets: self.targets,
                options: &quiet,
                masker: self.masker.clone(),
            };
            let mut plan = planner.render(selection)?;
            for step in plan.steps.iter_mut().chain(plan.finally.iter_mut()) {
                step.status = Status::Skipped;
                step.reason = Some("already up to date".to_owned());
            }
            for check in plan.checks.iter_mut().filter(|c| c.status == "not-run") {
                check.observed = "not run: already up to date".to_owned();
            }
            plan.up_to_date = true;
            return Ok(plan);
        }
        self.render(selection)
    }

    fn render(&self, selection: Option<Selection>) -> Result<Plan, PlanError> {
        let playbook = self.playbook;
        let run = ("<run id>", "<run start>");
        // One context per target: its variables, `host.*`, and the results of
        // the steps it has run so far.
        let mut contexts: IndexMap<String, Context> = IndexMap::new();
        for name in playbook.target_names() {
            contexts.insert(name.clone(), Context::on(playbook, &name, selection.as_ref(), None, run));
        }
        let mut ready = true;

        let mut checks = Vec::new();
        // A check runs on its hosts `parallel` at a time; results keep the hosts' order.
        let parallel = playbook.inventory.as_ref().map_or(1, |i| i.parallel).max(1);
        for check in &playbook.checks {
            for chunk in check.targets.chunks(parallel) {
                let mut prepared = Vec::new();
                for target in chunk {
                    let base = contexts[target].value(None)?;
                    let revealed = match &self.options.secrets {
                        Some(values) => {
                            Some(Context::on(playbook, target, selection.as_ref(), Some(values), run).value(None)?)
                        }
                        None => None,
                    };
                    prepared.push((target, base, revealed));
                }
                let results: Vec<Result<CheckResult, PlanError>> = if prepared.len() == 1 {
                    prepared
                        .iter()
                        .map(|(target, base, revealed)| self.check(check, target, base, revealed.as_ref()))
                        .collect()
                } else {
                    std::thread::scope(|scope| {
                        let handles: Vec<_> = prepared
                            .iter()
                            .map(|(target, base, revealed)| {
                                scope.spawn(move || self.check(check, target, base, revealed.as_ref()))
                            })
                            .collect();
                        handles
                            .into_iter()
                            .map(|handle| {
                                handle.join().unwrap_or_else(|_| {
                                    Err(PlanError::Invalid(vec![Diagnostic::error(
                                        "internal error: a readiness check's thread panicked",
                                    )]))
                                })
                            })
                            .collect()
                    })
                };
                for ((target, ..), result) in prepared.iter().zip(results) {
                    let mut result = result?;
                    ready &= result.status != "failed";
                    result.host = playbook.inventory.is_some().then(|| (*target).clone());
                    checks.push(result);
                }
                interrupted()?;
            }
        }

        let mut steps = Vec::new();
        for step in &playbook.steps {
            let planned = self.step(step, &mut contexts)?;
            interrupted()?;
            let failed = |p: &PlannedStep| p.output.as_ref().is_some_and(|o| o.exit_code != Some(0));
            if (failed(&planned) || planned.per_host.iter().any(failed)) && !step.continue_on_error {
                ready = false;
            }
            steps.push(planned);
        }
        let mut finally = Vec::new();
        for step in &playbook.finally {
            finally.push(self.step(step, &mut contexts)?);
        }

        let window =
            playbook.window.as_ref().map(|w| w.verdict(&self.options.now.unwrap_or_else(jiff::Timestamp::now)));
        let hosts: Vec<PlannedHost> = playbook
            .inventory
            .iter()
            .flat_map(|i| &i.hosts)
            .map(|h| PlannedHost { name: h.name.clone(), address: h.destination.display(), roles: h.roles.clone() })
            .collect();
        let target = match hosts.len() {
            0 => crate::playbook::LOCAL.to_owned(),
            1 => "a fleet of 1 host".to_owned(),
            n => format!("a fleet of {n} hosts"),
        };
        Ok(Plan {
            v: PLAN_FORMAT,
            playbook: playbook.name.clone(),
            description: playbook.description.clone(),
            file: playbook.source.display.clone(),
            target,
            hosts,
            environment: playbook.environment.clone(),
            fingerprint: playbook.fingerprint[..16].to_owned(),
            vars: playbook.vars.clone(),
            secrets: playbook.secrets.iter().map(|(name, secret)| secret_status(name, secret)).collect(),
            version: selection.as_ref().map(version_plan),
            window,
            checks,
            steps,
            finally,
            ready,
            up_to_date: false,
            selection,
            probed: None,
        })
    }

    /// The transport of a target this plan uses.
    fn transport(&self, target: &str) -> Result<&dyn Transport, PlanError> {
        self.targets.get(target).ok_or_else(|| {
            PlanError::Invalid(vec![Diagnostic::error(format!("internal error: no connection to `{target}`"))])
        })
    }

    /// Reads the current and available versions, choosing nothing.
    fn probe(&self, spec: &VersionSpec) -> Result<Probed, PlanError> {
        let secrets = self.options.secrets.as_ref();
        let context = Context::on(self.playbook, &spec.on, None, secrets, ("<run id>", "<run start>")).value(None)?;
        let transport = self.transport(&spec.on)?;
        let render = |template: &Template| template.render(&context).map_err(|e| e.to_string());
        let spec_for = |command: &Command, cwd: Option<String>| {
            command_spec(command, &context, cwd.as_deref(), &[], Some(Duration::from_secs(120)))
                .map_err(|e| e.to_string())
        };
        let probe = |probe: &crate::playbook::Probe| {
            select::run_probe(probe, transport, &render, &spec_for).map_err(|why| self.masker.mask(&why))
        };
        let current = probe(&spec.current)
            .and_then(|found| found.into_iter().next().ok_or_else(|| "the probe found none".to_owned()));
        interrupted()?;
        let available = probe(&spec.available);
        interrupted()?;
        Ok(Probed { current, available })
    }

    fn select(&self, spec: &VersionSpec) -> Result<Selection, PlanError> {
        let secrets = self.options.secrets.as_ref();
        let context = Context::on(self.playbook, &spec.on, None, secrets, ("<run id>", "<run start>")).value(None)?;
        let transport = self.transport(&spec.on)?;
        let render = |template: &Template| template.render(&context).map_err(|e| e.to_string());
        let spec_for = |command: &Command, cwd: Option<String>| {
            command_spec(command, &context, cwd.as_deref(), &[], Some(Duration::from_secs(120)))
                .map_err(|e| e.to_string())
        };
        let target = select::resolve_target(spec, &context).map_err(|d| PlanError::Invalid(vec![d]))?;
        let mut probe = |probe: &crate::playbook::Probe| {
            select::run_probe(probe, transport, &render, &spec_for).map_err(|why| self.masker.mask(&why))
        };
        let selection = select::select(spec, target.as_ref(), &self.options.selection, &mut probe)
            .map_err(|error| PlanError::Version { message: error.message, usage: error.usage });
        interrupted()?;
        selection
    }

    /// Runs a readiness check. `revealed` is the context with secret values
    /// (`run` only); what is shown is rendered with masks.
    fn check(
        &self,
        check: &Check,
        target: &str,
        context: &minijinja::Value,
        revealed: Option<&minijinja::Value>,
    ) -> Result<CheckResult, PlanError> {
        let name = check.name.render(context)?;
        let hint = check.hint.as_ref().map(|h| h.render(context)).transpose()?;
        let shown = describe_command(&check.command, context)?;
        let needs_secret = shown.contains(SECRET_MARK)
            || render_env(&check.env, context)?.iter().any(|(_, v)| v.contains(SECRET_MARK))
            || check.cwd.as_ref().map(|c| c.render(context)).transpose()?.is_some_and(|c| c.contains(SECRET_MARK));
        let exec = revealed.unwrap_or(context);
        let cwd = check.cwd.as_ref().map(|c| c.render(exec)).transpose()?;
        let env = render_env(&check.env, exec)?;
        let mut spec = command_spec(&check.command, exec, cwd.as_deref(), &env, Some(check.timeout))?;
        spec.masker = self.masker.clone();
        if let Some(guard) = &check.guard
            && !guard.eval(context)?
        {
            return Ok(CheckResult {
                name,
                command: shown,
                status: "skipped",
                observed: format!("`{}` is false", guard.source),
                hint: None,
                host: None,
            });
        }
        if !self.options.execute {
            return Ok(CheckResult {
                name,
                command: shown,
                status: "not-run",
                observed: String::new(),
                hint,
                host: None,
            });
        }
        if needs_secret && revealed.is_none() {
            return Ok(CheckResult {
                name,
                command: shown,
                status: "not-run",
                observed: "it reads a secret, and only `run` reads secrets".to_owned(),
                hint: None,
                host: None,
            });
        }
        let output = match self.transport(target)?.run(&spec, &mut |_| {}) {
            Ok(output) => output,
            Err(error) => {
                return Ok(CheckResult {
                    name,
                    command: shown,
                    status: "failed",
                    observed: self.masker.mask(&format!("could not start: {}", crate::document::io_reason(&error))),
                    hint,
                    host: None,
                });
            }
        };
        let verdict = crate::readiness::judge(&check.expect, &output, exec)?;
        Ok(CheckResult {
            name,
            command: shown,
            status: if verdict.passed { "passed" } else { "failed" },
            observed: self.masker.mask(&verdict.observed),
            hint: if verdict.passed { None } else { hint },
            host: None,
        })
    }

    /// Plans a step on every host it targets: one rendering per host, grouped
    /// where identical (the first group is the step, the others `per_host`).
    fn step(&self, step: &Step, contexts: &mut IndexMap<String, Context>) -> Result<PlannedStep, PlanError> {
        let id = step.id.as_str();
        let mut renderings: Vec<(String, PlannedStep)> = Vec::new();
        for target in &step.targets {
            let transport = self.transport(target)?;
            let context = contexts.get_mut(target).ok_or_else(|| {
                PlanError::Invalid(vec![Diagnostic::error(format!("internal error: no context for `{target}`"))])
            })?;
            // A plan shows each step's first try.
            context.set_current_step(StepInfo { id: id.to_owned(), attempt: 1, interrupted: false });
            let mut planned = describe_step(step, context, transport, true)?;
            let result = match planned.status {
                Status::Skipped => Some(StepResult { stdout: String::new(), exit_code: None, skipped: true }),
                Status::WillRun if step.read_only && self.options.execute_read_only && !reads_secret(&planned) => {
                    let Action::Command(command) = &step.action else { unreachable_read_only() };
                    let value = context.value(step.scope.as_ref())?;
                    let spec = command_spec(
                        command,
                        &value,
                        planned.cwd.as_deref(),
                        &render_env(&step.env, &value)?,
                        step.timeout,
                    )?;
                    let result = match transport.run(&spec, &mut |_| {}) {
                        Ok(output) => StepResult {
                            stdout: output.stdout.trim().to_owned(),
                            exit_code: output.exit_code,
                            skipped: false,
                        },
                        Err(error) => StepResult {
                            stdout: format!("could not start: {}", crate::document::io_reason(&error)),
                            exit_code: None,
                            skipped: false,
                        },
                    };
                    planned.output = Some(result.clone());
                    Some(result)
                }
                Status::WillRun if step.read_only && self.options.execute_read_only => {
                    planned.reason =
                        Some("`plan` does not run it: it reads a secret, which only `run` reads".to_owned());
                    None
                }
                _ => None,
            };
            // What later steps read: this host's result; a step that runs on
            // one target only is what every host reads.
            let sole = step.targets.len() == 1;
            for (name, context) in contexts.iter_mut() {
                if name == target || sole {
                    match &result {
                        Some(result) => context.set_step(id, result),
                        None => context.set_step_unknown(id),
                    }
                }
            }
            renderings.push((target.clone(), planned));
        }
        let fleet = self.playbook.inventory.is_some();
        let mut groups: Vec<PlannedStep> = Vec::new();
        for (target, planned) in renderings {
            match groups.iter_mut().find(|g| same_rendering(g, &planned)) {
                Some(group) => group.hosts.push(target),
                None => {
                    let mut planned = planned;
                    if fleet {
                        planned.hosts.push(target);
                    }
                    groups.push(planned);
                }
            }
        }
        let mut groups = groups.into_iter();
        let mut first = groups.next().ok_or_else(|| {
            PlanError::Invalid(vec![Diagnostic::error(format!("internal error: step `{id}` targets nothing"))])
        })?;
        first.per_host = groups.collect();
        first.once = step.targets.len() == 1 && fleet && self.playbook.step_is_once(step);
        first.rolling = step
            .batch
            .as_ref()
            .map(|b| format!("{} at a time, with the steps of `{}`", hosts_count(b.serial), b.include));
        Ok(first)
    }
}

/// "2 hosts", "25% of the hosts".
fn hosts_count(count: crate::playbook::Count) -> String {
    match count {
        crate::playbook::Count::Hosts(1) => "1 host".to_owned(),
        crate::playbook::Count::Hosts(n) => format!("{n} hosts"),
        crate::playbook::Count::Percent(p) => format!("{p}% of the hosts"),
    }
}

/// Do two hosts' renderings of a step say the same?
fn same_rendering(a: &PlannedStep, b: &PlannedStep) -> bool {
    let key = |p: &PlannedStep| {
        serde_json::to_string(&(
            &p.status,
            &p.reason,
            &p.action,
            &p.cwd,
            &p.env,
            &p.rollback,
            &p.output,
            &p.fingerprint,
        ))
        .unwrap_or_default()
    };
    key(a) == key(b)
}

/// Renders one step in a context: guards, `creates`, name, action, rollback
/// and fingerprint. Pure: it runs nothing and changes nothing.
pub(crate) fn describe_step(
    step: &Step,
    context: &Context,
    transport: &dyn Transport,
    diffs: bool,
) -> Result<PlannedStep, PlanError> {
    let id = step.id.as_str();
    let value = context.value(step.scope.as_ref())?;
    let (mut status, mut reason) = evaluate_guards(step, context)?;
    if status == Status::WillRun
        && let Some(creates) = &step.creates
    {
        let path = creates.render(&value)?;
        // A path that cannot be looked at (a lost host) does not skip the step.
        if transport.exists(&path).unwrap_or(false) {
            status = Status::Skipped;
            reason = Some(format!("`{path}` exists"));
        }
    }
    let name = step.name.as_ref().map(|n| n.render(&value)).transpose()?;
    let files = diffs.then_some(transport);
    let action = render_action(&step.action, &value, status == Status::WillRun, files)?;
    let cwd = step.cwd.as_ref().map(|c| c.render(&value)).transpose()?;
    let planned_cwd = cwd.clone();
    let env = render_env(&step.env, &value)?;
    let rollback = match &step.rollback {
        Rollback::Nothing => PlannedRollback::None,
        Rollback::Restore => PlannedRollback::Restore,
        Rollback::Irreversible => PlannedRollback::Irreversible,
        Rollback::Action { action, guard, cwd, env, timeout } => PlannedRollback::Action {
            action: Box::new(render_action(action, &value, false, None)?),
            when: guard.as_ref().map(|g| g.source.clone()),
            // A rollback runs where its step ran unless it says otherwise.
            cwd: cwd.as_ref().map(|c| c.render(&value)).transpose()?.or_else(|| planned_cwd.clone()),
            env: render_env(env, &value)?.into_iter().collect(),
            timeout: timeout.map(|t| humantime::format_duration(t).to_string()),
        },
    };
    let mut planned = PlannedStep {
        id: id.to_owned(),
        name,
        status,
        reason,
        action,
        cwd,
        env: env.into_iter().collect(),
        timeout: step.timeout.map(|t| humantime::format_duration(t).to_string()),
        retries: step.retries,
        retry_delay: (step.retries > 0).then(|| humantime::format_duration(step.retry_delay).to_string()),
        rollback,
        point_of_no_return: matches!(step.rollback, Rollback::Irreversible),
        read_only: step.read_only,
        idempotent: step.idempotent,
        continue_on_error: step.continue_on_error,
        fingerprint: String::new(),
        output: None,
        hosts: Vec::new(),
        per_host: Vec::new(),
        once: false,
        rolling: None,
    };
    if let Some(what) = holds_nul(&planned) {
        return Err(PlanError::Invalid(vec![
            Diagnostic::error(format!("step `{id}`: {what} holds a NUL byte, which no command can receive"))
                .at(step.location.clone()),
        ]));
    }
    planned.fingerprint = fingerprint(&planned);
    Ok(planned)
}

/// What part of a rendered step holds a NUL byte, if any.
fn holds_nul(planned: &PlannedStep) -> Option<String> {
    let action = match &planned.action {
        PlannedAction::Run { command, .. } => command.contains('\0'),
        PlannedAction::Exec { argv } => argv.iter().any(|a| a.contains('\0')),
        _ => false,
    };
    if action {
        return Some("the command".to_owned());
    }
    if let Some(key) = planned.env.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')).map(|(k, _)| k) {
        return Some(format!("the environment variable `{}`", key.replace('\0', "\\0")));
    }
    planned.cwd.as_ref().is_some_and(|c| c.contains('\0')).then(|| "the working directory".to_owned())
}

/// Evaluates the guards that the plan can know.
pub(crate) fn evaluate_guards(step: &Step, context: &Context) -> Result<(Status, Option<String>), PlanError> {
    for (guard, scope) in &step.guards {
        let names = guard.analyze().map_err(|d| PlanError::Invalid(vec![d]))?;
        let value = context.value(scope.as_ref())?;
        let unknown = names.iter().find(|name| depends_on_unknown(name, &value));
        if let Some(name) = unknown {
            return Ok((Status::DecidedAtRunTime, Some(format!("`{}` reads `{name}`", guard.source))));
        }
        if !guard.eval(&value)? {
            return Ok((Status::Skipped, Some(format!("`{}` is false", guard.source))));
        }
    }
    Ok((Status::WillRun, None))
}

/// Renders an action. With `files`, the file an `edit` or `template` changes
/// is read through that transport to show the diff.
pub(crate) fn render_action(
    action: &Action,
    context: &minijinja::Value,
    will_run: bool,
    files: Option<&dyn Transport>,
) -> Result<PlannedAction, PlanError> {
    let read = |path: &str| -> Option<std::io::Result<String>> {
        let transport = files?;
        Some(transport.read_file(path).and_then(|(content, _)| {
            match content {
                Some(bytes) => String::from_utf8(bytes)
                    .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text")),
                None => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
            }
        }))
    };
    Ok(match action {
        Action::Command(Command::Shell { shell, script }) => {
            PlannedAction::Run { shell: shell.clone(), command: script.render(context)? }
        }
        Action::Command(Command::Exec(argv)) => {
            PlannedAction::Exec { argv: argv.iter().map(|a| a.render(context)).collect::<Result<_, _>>()? }
        }
        Action::Edit(edit) => {
            let path = edit.path.render(context)?;
            let set = describe_edit(&edit.kind, context, edit.path.location.as_ref())?;
            let (diff, note) = match read(&path) {
                _ if set.iter().any(|s| s.contains(SECRET_MARK)) => (None, Some(HIDDEN.to_owned())),
                None => (None, None),
                Some(Ok(old)) => match apply_edit(&edit.kind, &old, context, edit.path.location.as_ref())? {
                    Ok(new) => match edit::diff(&old, &new, &path) {
                        Some(diff) => (Some(diff), None),
                        None => (None, Some("no change: the file already says this".to_owned())),
                    },
                    Err(why) => (None, Some(format!("cannot apply: {why}"))),
                },
                Some(Err(error)) if will_run => (
                    None,
                    Some(format!("{UNREADABLE_NOW} ({}): {KNOWN_AT_RUN_TIME}", crate::document::io_reason(&error))),
                ),
                Some(Err(_)) => (None, None),
            };
            PlannedAction::Edit { path, set, diff, note }
        }
        Action::Template(template) => {
            let dest = template.dest.render(context)?;
            let content = template.content.render(context)?;
            let (diff, note) = if content.contains(SECRET_MARK) {
                // Neither the file as it is (it may hold the secret already) nor the new content.
                (None, Some(HIDDEN.to_owned()))
            } else {
                match read(&dest) {
                    None => (None, None),
                    Some(Ok(old)) => match edit::diff(&old, &content, &dest) {
                        Some(diff) => (Some(diff), None),
                        None => (None, Some("no change: the file already has this content".to_owned())),
                    },
                    Some(Err(_)) => (edit::diff("", &content, &dest), Some("a new file".to_owned())),
                }
            };
            PlannedAction::Template {
                src: template.src.clone(),
                dest,
                mode: template.mode.map(|m| format!("{m:04o}")),
                diff,
                note,
            }
        }
        Action::Pause(message) => PlannedAction::Pause { message: message.render(context)? },
    })
}

/// The note of an edit whose file cannot be read during the plan (an earlier step may create it).
const UNREADABLE_NOW: &str = "cannot read it now";
const KNOWN_AT_RUN_TIME: &str = "its change is known only at run time";

/// Is this an edit whose change the plan could not show (its file cannot be read yet)?
pub(crate) fn change_known_at_run_time(action: &PlannedAction) -> bool {
    matches!(action, PlannedAction::Edit { note: Some(note), .. } if note.starts_with(UNREADABLE_NOW))
}

/// The note of a file change whose content holds a secret.
pub(crate) const HIDDEN: &str = "the new content holds a secret: the file is not shown";

/// Does this file action write a secret into its file? (Rendered with masked
/// secrets, its content shows a mask.) Such a file's content is never shown,
/// and its snapshot stays out of the state dir.
pub(crate) fn writes_secret(action: &Action, shown: &minijinja::Value) -> bool {
    match action {
        Action::Template(template) => template.content.render(shown).is_ok_and(|c| c.contains(SECRET_MARK)),
        Action::Edit(edit) => {
            describe_edit(&edit.kind, shown, None).is_ok_and(|set| set.iter().any(|s| s.contains(SECRET_MARK)))
        }
        _ => false,
    }
}

/// Does a planned command read a secret (which `plan` does not have)?
fn reads_secret(planned: &PlannedStep) -> bool {
    let action = match &planned.action {
        PlannedAction::Run { command, .. } => command.contains(SECRET_MARK),
        PlannedAction::Exec { argv } => argv.iter().any(|a| a.contains(SECRET_MARK)),
        _ => false,
    };
    action
        || planned.env.values().any(|v| v.contains(SECRET_MARK))
        || planned.cwd.as_ref().is_some_and(|c| c.contains(SECRET_MARK))
}

fn unreachable_read_only() -> ! {
    panic!("internal error: `check` lets only commands be read-only")
}

/// True when `name` (dotted) reads a step result only `run` will know.
fn depends_on_unknown(name: &str, context: &minijinja::Value) -> bool {
    let Some(rest) = name.strip_prefix("steps.") else {
        return false;
    };
    let Ok(steps) = context.get_attr("steps") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('.').collect();
    // Included ids hold dots: find the longest known id.
    for n in (1..=parts.len()).rev() {
        let id = parts[..n].join(".");
        if let Ok(step) = steps.get_attr(&id)
            && !step.is_undefined()
        {
            return step.as_object().is_some_and(|o| o.repr() == minijinja::value::ObjectRepr::Plain);
        }
    }
    false
}

/// Applies an edit to `old`; the outer error is a render error, the inner one a file that does not fit.
pub(crate) fn apply_edit(
    kind: &EditKind,
    old: &str,
    context: &minijinja::Value,
    location: Option<&crate::diagnostic::Location>,
) -> Result<Result<String, String>, RenderError> {
    Ok(match kind {
        EditKind::Json(entries) => {
            let rendered: Vec<(String, serde_json::Value)> = entries
                .iter()
                .map(|(pointer, value)| Ok((pointer.render(context)?, render_value(value, context, location)?)))
                .collect::<Result<_, RenderError>>()?;
            edit::json(old, &rendered)
        }
        EditKind::Toml(entries) => {
            let rendered: Vec<(Vec<String>, serde_json::Value)> = entries
                .iter()
                .map(|(path, value)| Ok((render_key(path, context)?, render_value(value, context, location)?)))
                .collect::<Result<_, RenderError>>()?;
            edit::toml(old, &rendered)
        }
        EditKind::Line { regex, replace, missing } => {
            edit::lines(old, regex.regex(context)?.as_ref(), &replace.render(context)?, *missing)
        }
    })
}

/// One line per change an edit makes (`/require/x = "2.4.7"`), rendered.
fn describe_edit(
    kind: &EditKind,
    context: &minijinja::Value,
    location: Option<&crate::diagnostic::Location>,
) -> Result<Vec<String>, RenderError> {
    Ok(match kind {
        EditKind::Json(entries) => entries
            .iter()
            .map(|(pointer, value)| {
                Ok(format!("{} = {}", pointer.render(context)?, render_value(value, context, location)?))
            })
            .collect::<Result<_, RenderError>>()?,
        EditKind::Toml(entries) => entries
            .iter()
            .map(|(path, value)| {
                let keys: Vec<String> = render_key(path, context)?.iter().map(|key| toml_key(key)).collect();
                Ok(format!("{} = {}", keys.join("."), render_value(value, context, location)?))
            })
            .collect::<Result<_, RenderError>>()?,
        EditKind::Line { regex, replace, missing } => {
            let regex = regex.regex(context)?;
            let replace = replace.render(context)?;
            vec![match missing {
                Missing::Fail => format!("lines matching `{regex}` become `{replace}`"),
                Missing::Append => format!("lines matching `{regex}` become `{replace}` (appended when none does)"),
                Missing::Ignore => format!("lines matching `{regex}` become `{replace}` (if any)"),
            }]
        }
    })
}

/// The keys of a TOML edit's dotted path, rendered; a key may not render empty.
fn render_key(path: &[Template], context: &minijinja::Value) -> Result<Vec<String>, RenderError> {
    path.iter()
        .map(|key| {
            let rendered = key.render(context)?;
            if rendered.is_empty() {
                return Err(RenderError {
                    message: format!("the key `{}` renders empty", key.source),
                    location: key.location.clone(),
                });
            }
            Ok(rendered)
        })
        .collect()
}

/// A TOML key as people write it: bare when it can be, else quoted.
fn toml_key(key: &str) -> String {
    if key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        key.to_owned()
    } else {
        toml::Value::String(key.to_owned()).to_string()
    }
}

/// Resolves a run-time path against the directory upshift was started in.
pub(crate) fn resolve(path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().unwrap_or_default().join(path) }
}

pub(crate) fn render_env(
    env: &[(String, Template)],
    context: &minijinja::Value,
) -> Result<Vec<(String, String)>, RenderError> {
    env.iter().map(|(key, value)| Ok((key.clone(), value.render(context)?))).collect()
}

/// The rendered command line as people see it.
fn describe_command(command: &Command, context: &minijinja::Value) -> Result<String, RenderError> {
    Ok(match command {
        Command::Shell { script, .. } => script.render(context)?,
        Command::Exec(argv) => {
            let argv: Vec<String> = argv.iter().map(|a| a.render(context)).collect::<Result<_, _>>()?;
            shell_words::join(argv)
        }
    })
}

/// Builds the spec of a command in a context.
pub(crate) fn command_spec(
    command: &Command,
    context: &minijinja::Value,
    cwd: Option<&str>,
    env: &[(String, String)],
    timeout: Option<Duration>,
) -> Result<CommandSpec, RenderError> {
    let (argv, location) = match command {
        Command::Shell { shell, script } => {
            (vec![shell.clone(), "-c".to_owned(), script.render(context)?], script.location.clone())
        }
        Command::Exec(argv) => (
            argv.iter().map(|a| a.render(context)).collect::<Result<_, _>>()?,
            argv.first().and_then(|a| a.location.clone()),
        ),
    };
    // A NUL cannot reach a process: say so before anything runs, not at the spawn.
    let nul = |what: &str| RenderError {
        message: format!("{what} holds a NUL byte, which no command can receive"),
        location: location.clone(),
    };
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(nul("the command"));
    }
    if let Some((key, _)) = env.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
        return Err(nul(&format!("the environment variable `{}`", key.replace('\0', "\\0"))));
    }
    if cwd.is_some_and(|c| c.contains('\0')) {
        return Err(nul("the working directory"));
    }
    Ok(CommandSpec { argv, cwd: cwd.map(resolve), env: env.to_vec(), timeout, masker: Masker::default() })
}

fn secret_status(name: &str, secret: &crate::playbook::Secret) -> SecretStatus {
    let empty = matches!(&secret.source, SecretSource::Env(var) if std::env::var_os(var).is_some_and(|v| v.is_empty()));
    let (source, present) = match &secret.source {
        SecretSource::Env(var) => (format!("env {var}"), Some(std::env::var_os(var).is_some_and(|v| !v.is_empty()))),
        SecretSource::File(path) => {
            (format!("file {}", crate::diagnostic::display_path(path)), Some(std::fs::File::open(path).is_ok()))
        }
        SecretSource::Command(argv) => (format!("command {}", shell_words::join(argv)), None),
    };
    SecretStatus { name: name.to_owned(), source, present, empty, required: secret.required }
}

fn version_plan(selection: &Selection) -> VersionPlan {
    VersionPlan {
        scheme: selection.scheme,
        current: selection.current.to_string(),
        target_requirement: selection.requirement.clone(),
        candidates: selection.candidates.iter().take(10).map(|v| v.to_string()).collect(),
        candidates_total: selection.candidates.len(),
        selected: selection.target.to_string(),
        reason: selection.reason.clone(),
        change: selection.change.to_owned(),
        passed_over: selection.passed_over.clone(),
        requirements: selection.requirements.clone(),
        matrix_row: selection.matrix_row.clone(),
        up_to_date: selection.up_to_date,
    }
}

/// Hash of a planned step's rendered definition (not of its status or output).
fn fingerprint(step: &PlannedStep) -> String {
    /// The action without what depends on the current disk (diffs, notes).
    #[derive(Serialize)]
    #[serde(tag = "kind", rename_all = "lowercase")]
    enum ActionDefinition<'a> {
        Edit {
            path: &'a str,
            set: &'a [String],
        },
        Template {
            src: &'a str,
            dest: &'a str,
            mode: &'a Option<String>,
        },
        #[serde(untagged)]
        Other(&'a PlannedAction),
    }
    #[derive(Serialize)]
    struct Definition<'a> {
        id: &'a str,
        action: ActionDefinition<'a>,
        cwd: &'a Option<String>,
        env: &'a IndexMap<String, String>,
        timeout: &'a Option<String>,
        retries: u32,
        rollback: &'a PlannedRollback,
    }
    /// Feeds serialized bytes straight into the hash.
    struct Hasher(Sha256);
    impl std::io::Write for Hasher {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let action = match &step.action {
        PlannedAction::Edit { path, set, .. } => ActionDefinition::Edit { path, set },
        PlannedAction::Template { src, dest, mode, .. } => ActionDefinition::Template { src, dest, mode },
        other => ActionDefinition::Other(other),
    };
    let definition = Definition {
        id: &step.id,
        action,
        cwd: &step.cwd,
        env: &step.env,
        timeout: &step.timeout,
        retries: step.retries,
        rollback: &step.rollback,
    };
    let mut hasher = Hasher(Sha256::new());
    serde_json::to_writer(&mut hasher, &definition).expect("hashing cannot fail");
    crate::diagnostic::hex(&hasher.0.finalize()[..8])
}
