//! Saved plans: `plan --out FILE` writes the plan people reviewed as a
//! versioned JSON file (no secret value, mode 0600); `run --plan FILE` and
//! `plan --check FILE` read it back and compare it with a plan made now from
//! the same inputs and the recorded version choice: playbook files one by one,
//! vars, the current and available versions, the files edits and templates
//! read, readiness results, guard verdicts and every rendered step. Each
//! difference is one line an operator understands.
//!
//! This module builds, reads and compares plan files. It runs nothing (the
//! plans it compares were made by `plan`) and never sees a secret value.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::check::Inputs;
use crate::journal::{Phase, PlanRef, ReviewedStep, SavedSelection};
use crate::plan::{Plan, PlannedAction, PlannedStep, Status};
use crate::playbook::{LOCAL, Playbook, SourceDigest};
use crate::select::Selection;
use crate::transport::Targets;
use crate::window::Verdict;

/// The plan file's format version; bump on incompatible changes.
pub(crate) const PLAN_FILE_FORMAT: u32 = 1;

/// What a plan file says it is.
const KIND: &str = "upshift-plan";

/// The largest plan file read back.
const PLAN_FILE_LIMIT: u64 = 256 << 20;

/// A plan as saved by `plan --out`. Everything `run --plan` needs to run
/// exactly it, and everything it re-probes to refuse a plan the world has
/// moved away from. `S` is a step: the plan's own when writing, the view a
/// comparison needs (`SavedStep`) when reading.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SavedPlan<S = SavedStep> {
    pub(crate) v: u32,
    pub(crate) kind: String,
    pub(crate) id: String,
    /// The upshift version that made it.
    pub(crate) upshift: String,
    pub(crate) created_at: String,
    pub(crate) expires_at: String,
    /// Why it expires then.
    pub(crate) expiry: String,
    /// Where `plan` ran: run-time paths resolve against it.
    pub(crate) cwd: PathBuf,
    pub(crate) playbook: SavedPlaybook,
    /// The variables, resolved.
    pub(crate) vars: IndexMap<String, serde_json::Value>,
    pub(crate) version: Option<SavedVersion>,
    pub(crate) window: Option<Verdict>,
    pub(crate) checks: Vec<SavedCheck>,
    /// Each as in `plan --format json`.
    pub(crate) steps: Vec<S>,
    pub(crate) finally: Vec<S>,
    /// Every file an `edit` or `template` that may run reads.
    pub(crate) files: Vec<FileDigest>,
}

/// What reading a plan keeps of a step (its file has all of `plan --format json`).
#[derive(Debug, Deserialize)]
pub(crate) struct SavedStep {
    id: String,
    status: Status,
    reason: Option<String>,
    fingerprint: String,
    /// The output of a read-only step the plan ran.
    output: Option<serde::de::IgnoredAny>,
    /// In a fleet: the hosts this rendering is for.
    #[serde(default)]
    hosts: Vec<String>,
    /// In a fleet: the hosts where the step rendered differently, grouped.
    #[serde(default)]
    per_host: Vec<SavedStep>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SavedPlaybook {
    pub(crate) name: String,
    /// As given to `plan` (relative to `cwd` when it was).
    pub(crate) file: String,
    pub(crate) path: PathBuf,
    /// Of every file it was read from together (as `plan` prints it, in full).
    pub(crate) fingerprint: String,
    pub(crate) environment: Option<String>,
    pub(crate) inputs: SavedInputs,
    /// Every file it was read from, each with its digest.
    pub(crate) sources: Vec<SourceDigest>,
}

/// The command line's inputs, to load the playbook again exactly so.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SavedInputs {
    pub(crate) env: Option<String>,
    pub(crate) env_file: Option<PathBuf>,
    pub(crate) var_files: Vec<PathBuf>,
    /// `--var` values, in order.
    pub(crate) vars: Vec<(String, String)>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SavedVersion {
    pub(crate) scheme: crate::version::Scheme,
    pub(crate) current: String,
    pub(crate) selected: String,
    pub(crate) change: String,
    pub(crate) requirement: Option<String>,
    pub(crate) reason: String,
    /// Every version that qualified, newest first.
    pub(crate) candidates: Vec<String>,
    pub(crate) passed_over: Vec<String>,
    pub(crate) requirements: IndexMap<String, String>,
    pub(crate) matrix_row: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SavedCheck {
    pub(crate) name: String,
    /// In a fleet: the host it ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) host: Option<String>,
    pub(crate) command: String,
    pub(crate) status: String,
    pub(crate) observed: String,
    pub(crate) hint: Option<String>,
}

/// A file an `edit` or `template` reads, as it was when the plan was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct FileDigest {
    /// As the step renders it.
    pub(crate) path: String,
    /// In a fleet: the host it is on (none: this machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) host: Option<String>,
    /// Resolved against `cwd`.
    pub(crate) resolved: PathBuf,
    pub(crate) exists: bool,
    /// sha256 of its content; `null` when it does not exist, cannot be read,
    /// or will hold a secret (then only its existence is compared).
    pub(crate) sha256: Option<String>,
    pub(crate) secret: bool,
    /// Why it could not be read, if it could not.
    pub(crate) error: Option<String>,
    /// The steps that read it.
    pub(crate) steps: Vec<String>,
}

/// What a comparison found.
#[derive(Debug, Default)]
pub(crate) struct Review {
    /// Each one refuses the plan.
    pub(crate) differences: Vec<String>,
    /// Worth saying, not refusing for (a newer version published since).
    pub(crate) notes: Vec<String>,
}

/// How long a plan made at `now` stays valid, and why: `--expires-in`, the
/// end of the window open now or of the next one, or 24 hours.
fn expiry(playbook: &Playbook, now: jiff::Timestamp, expires_in: Option<Duration>) -> (jiff::Timestamp, String) {
    let after = |duration: Duration| {
        now.checked_add(jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(jiff::Timestamp::MAX)
    };
    if let Some(duration) = expires_in {
        return (after(duration), format!("`--expires-in {}`", humantime::format_duration(duration)));
    }
    if let Some(window) = &playbook.window
        && let Some((end, rule)) = window.closes(&now)
    {
        return (end, format!("the end of the maintenance window `{rule}`, {}", window.timezone));
    }
    (after(Duration::from_secs(24 * 3600)), "24 hours: the playbook has no maintenance window".to_owned())
}

fn new_plan_id(now: jiff::Timestamp, playbook: &Playbook) -> String {
    let mut hasher = Sha256::new();
    hasher.update(playbook.fingerprint.as_bytes());
    hasher.update(jiff::Timestamp::now().as_nanosecond().to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    format!("{}-{}", now.strftime("%Y%m%dT%H%M%SZ"), &crate::diagnostic::hex(&hasher.finalize())[..8])
}

/// The plan file of a plan: everything it shows, and what `run --plan` re-probes.
pub(crate) fn save<'a>(
    playbook: &Playbook,
    plan: &'a Plan,
    inputs: &Inputs,
    file: &Path,
    now: jiff::Timestamp,
    expires_in: Option<Duration>,
    targets: &Targets,
) -> SavedPlan<&'a PlannedStep> {
    // Whole seconds: what people read and compare.
    let now = now.round(jiff::Unit::Second).unwrap_or(now);
    let (expires_at, why) = expiry(playbook, now, expires_in);
    SavedPlan {
        v: PLAN_FILE_FORMAT,
        kind: KIND.to_owned(),
        id: new_plan_id(now, playbook),
        upshift: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: now.to_string(),
        expires_at: expires_at.to_string(),
        expiry: why,
        cwd: std::env::current_dir().unwrap_or_default(),
        playbook: SavedPlaybook {
            name: playbook.name.clone(),
            file: crate::diagnostic::display_path(file),
            path: crate::check::absolute(file),
            fingerprint: playbook.fingerprint.clone(),
            environment: playbook.environment.clone(),
            inputs: SavedInputs {
                env: inputs.env.clone(),
                env_file: inputs.env_file.as_deref().map(crate::check::absolute),
                var_files: inputs.var_files.iter().map(|p| crate::check::absolute(p)).collect(),
                vars: inputs.vars.clone(),
            },
            sources: playbook.sources.clone(),
        },
        vars: playbook.vars.clone(),
        version: plan.selection.as_ref().map(|selection| SavedVersion {
            scheme: selection.scheme,
            current: selection.current.to_string(),
            selected: selection.target.to_string(),
            change: selection.change.to_owned(),
            requirement: selection.requirement.clone(),
            reason: selection.reason.clone(),
            candidates: selection.candidates.iter().map(ToString::to_string).collect(),
            passed_over: selection.passed_over.clone(),
            requirements: selection.requirements.clone(),
            matrix_row: selection.matrix_row.clone(),
        }),
        window: plan.window.clone(),
        checks: plan
            .checks
            .iter()
            .map(|c| SavedCheck {
                name: c.name.clone(),
                host: c.host.clone(),
                command: c.command.clone(),
                status: c.status.to_owned(),
                observed: c.observed.clone(),
                hint: c.hint.clone(),
            })
            .collect(),
        steps: plan.steps.iter().collect(),
        finally: plan.finally.iter().collect(),
        files: files_read(plan, targets),
    }
}

/// Each rendering of a step with the hosts it is for (none: this machine alone).
fn renderings(step: &PlannedStep) -> impl Iterator<Item = (&PlannedStep, Vec<Option<&str>>)> {
    std::iter::once(step).chain(&step.per_host).map(|group| {
        let hosts =
            if group.hosts.is_empty() { vec![None] } else { group.hosts.iter().map(|h| Some(h.as_str())).collect() };
        (group, hosts)
    })
}

/// The files the `edit` and `template` steps that may run read, as they are
/// now, on each host they are on.
fn files_read(plan: &Plan, targets: &Targets) -> Vec<FileDigest> {
    let mut files: Vec<FileDigest> = Vec::new();
    for step in plan.steps.iter().chain(&plan.finally) {
        for (group, hosts) in renderings(step) {
            if group.status == Status::Skipped {
                continue;
            }
            let (path, note) = match &group.action {
                PlannedAction::Edit { path, note, .. } => (path, note),
                PlannedAction::Template { dest, note, .. } => (dest, note),
                _ => continue,
            };
            // A path only `run` will know (`<steps.x.stdout>`, `<secret:x>`) cannot be read now.
            if path.contains("<steps.") || path.contains("<secret:") {
                continue;
            }
            let secret = note.as_deref() == Some(crate::plan::HIDDEN);
            for host in hosts {
                if let Some(known) = files.iter_mut().find(|f| f.path == *path && f.host.as_deref() == host) {
                    known.steps.push(step.id.clone());
                    known.secret |= secret;
                    if secret {
                        known.sha256 = None;
                    }
                    continue;
                }
                let mut digest = digest_on(targets, host, path, secret);
                digest.steps.push(step.id.clone());
                files.push(digest);
            }
        }
    }
    files
}

/// A file's digest where it is: on this machine, or read through a host's connection.
fn digest_on(targets: &Targets, host: Option<&str>, path: &str, secret: bool) -> FileDigest {
    let Some(name) = host.filter(|h| *h != LOCAL) else {
        let mut digest = digest_file(path, secret);
        digest.host = host.map(str::to_owned);
        return digest;
    };
    let (exists, sha256, error) = match targets.get(name).map(|t| t.read_file(path)) {
        None => (true, None, Some(format!("there is no connection to `{name}`"))),
        Some(Ok((Some(content), _))) => {
            (true, (!secret).then(|| crate::diagnostic::hex(&Sha256::digest(&content))), None)
        }
        Some(Ok((None, _))) => (false, None, None),
        Some(Err(error)) => (true, None, Some(crate::document::io_reason(&error))),
    };
    FileDigest {
        path: path.to_owned(),
        host: Some(name.to_owned()),
        resolved: PathBuf::from(path),
        exists,
        sha256,
        secret,
        error,
        steps: Vec::new(),
    }
}

fn digest_file(path: &str, secret: bool) -> FileDigest {
    let resolved = crate::plan::resolve(path);
    let (exists, sha256, error) = match sha256_of(&resolved) {
        Ok(Some(sum)) => (true, (!secret).then_some(sum), None),
        Ok(None) => (false, None, None),
        Err(error) => (true, None, Some(crate::document::io_reason(&error))),
    };
    FileDigest { path: path.to_owned(), host: None, resolved, exists, sha256, secret, error, steps: Vec::new() }
}

/// The sha256 of a file's content; `None` when there is no such file.
fn sha256_of(path: &Path) -> std::io::Result<Option<String>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(Some(crate::diagnostic::hex(&hasher.finalize())))
}

/// How the digest closes a plan file: `,\n  "digest": "HEX"\n}\n`.
const DIGEST_KEY: &str = ",\n  \"digest\": \"";

impl<S: Serialize> SavedPlan<S> {
    /// The file's text: pretty JSON whose last member, `digest`, is the
    /// sha256 of the text without it (the same JSON, closed after `files`).
    pub(crate) fn to_text(&self) -> Result<String, String> {
        let body = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let open = body.strip_suffix("\n}").ok_or("a plan is a JSON object")?;
        let digest = crate::diagnostic::hex(&Sha256::digest(body.as_bytes()));
        Ok(format!("{open}{DIGEST_KEY}{digest}\"\n}}\n"))
    }

    /// Writes the file atomically, mode 0600.
    pub(crate) fn write(&self, path: &Path) -> Result<(), String> {
        let text = self.to_text()?;
        crate::files::write_atomic(path, text.as_bytes(), 0o600).map_err(|error| {
            format!("cannot write the plan to `{}`: {}", path.display(), crate::document::io_reason(&error))
        })
    }
}

/// What a file says it is, read before anything else.
#[derive(Deserialize)]
struct Kind {
    kind: Option<String>,
    v: Option<u64>,
}

impl SavedPlan {
    /// Reads a plan file back; any doubt about it is an error.
    pub(crate) fn read(path: &Path) -> Result<SavedPlan, String> {
        let shown = crate::diagnostic::display_path(path);
        let bytes = crate::files::read_document(path, PLAN_FILE_LIMIT)
            .map_err(|error| format!("cannot read the plan `{shown}`: {}", crate::document::io_reason(&error)))?;
        let text = String::from_utf8(bytes).map_err(|_| format!("`{shown}` is not a plan file: not UTF-8"))?;
        let kind: Kind =
            serde_json::from_str(&text).map_err(|error| format!("`{shown}` is not a plan file: {error}"))?;
        if kind.kind.as_deref() != Some(KIND) {
            return Err(format!("`{shown}` is not an upshift plan file (no `\"kind\": \"{KIND}\"`)"));
        }
        if kind.v != Some(u64::from(PLAN_FILE_FORMAT)) {
            return Err(format!(
                "`{shown}` is plan format {}; this upshift reads format {PLAN_FILE_FORMAT}",
                kind.v.map_or_else(|| "unknown".to_owned(), |v| v.to_string())
            ));
        }
        // The bytes as written, the digest taken out: any other byte is an edit.
        let edited = || format!("`{shown}` is damaged or was edited: its digest does not match its content");
        let (open, digest) =
            text.strip_suffix("\"\n}\n").and_then(|rest| rest.rsplit_once(DIGEST_KEY)).ok_or_else(edited)?;
        if crate::diagnostic::hex(&Sha256::digest(format!("{open}\n}}").as_bytes())) != digest {
            return Err(edited());
        }
        serde_json::from_str(&text).map_err(|error| format!("`{shown}` is not a plan file: {error}"))
    }

    /// The inputs that load its playbook again.
    pub(crate) fn inputs(&self) -> Inputs {
        let inputs = &self.playbook.inputs;
        Inputs {
            env: inputs.env.clone(),
            env_file: inputs.env_file.clone(),
            var_files: inputs.var_files.clone(),
            vars: inputs.vars.clone(),
        }
    }

    /// The recorded version choice, to bind as it is.
    pub(crate) fn selection(&self) -> Result<Option<Selection>, String> {
        let Some(version) = &self.version else { return Ok(None) };
        let saved = SavedSelection {
            scheme: version.scheme,
            current: version.current.clone(),
            target: version.selected.clone(),
            change: version.change.clone(),
            candidates: version.candidates.clone(),
            requirement: version.requirement.clone(),
            reason: version.reason.clone(),
            requirements: version.requirements.clone(),
            matrix_row: version.matrix_row.clone(),
        };
        let mut selection = crate::engine::selection_of(&saved)?;
        selection.passed_over.clone_from(&version.passed_over);
        Ok(Some(selection))
    }

    /// Each step as the plan rendered it, for the engine to hold the run to.
    pub(crate) fn reviewed(&self, file: &Path) -> PlanRef {
        let mut steps = Vec::new();
        for (phase, list) in [(Phase::Step, &self.steps), (Phase::Finally, &self.finally)] {
            for step in list.iter().flat_map(Step::of) {
                steps.push(ReviewedStep {
                    phase,
                    id: step.id.to_owned(),
                    status: status_name(step.status).to_owned(),
                    fingerprint: step.fingerprint.to_owned(),
                    known: step.known,
                    host: step.host.map(str::to_owned),
                });
            }
        }
        PlanRef { id: self.id.clone(), file: crate::check::absolute(file), steps }
    }

    /// The instant it expires.
    fn expires(&self) -> Option<jiff::Timestamp> {
        self.expires_at.parse().ok()
    }
}

/// What a comparison needs of a step on one target, saved or planned now.
struct Step<'a> {
    id: &'a str,
    /// In a fleet: the target (none: this machine alone).
    host: Option<&'a str>,
    status: Status,
    reason: Option<&'a str>,
    fingerprint: &'a str,
    /// The plan ran it (a read-only step) and knew its output.
    known: bool,
}

impl<'a> Step<'a> {
    /// A saved step, one per target it renders for.
    fn of(step: &'a SavedStep) -> Vec<Step<'a>> {
        let mut out = Vec::new();
        for group in std::iter::once(step).chain(&step.per_host) {
            let hosts: Vec<Option<&str>> = if group.hosts.is_empty() {
                vec![None]
            } else {
                group.hosts.iter().map(|h| Some(h.as_str())).collect()
            };
            for host in hosts {
                out.push(Step {
                    id: &step.id,
                    host,
                    status: group.status,
                    reason: group.reason.as_deref(),
                    fingerprint: &group.fingerprint,
                    known: group.output.is_some(),
                });
            }
        }
        out
    }

    /// A step planned now, one per target it renders for.
    fn from_planned(step: &'a PlannedStep) -> Vec<Step<'a>> {
        let mut out = Vec::new();
        for (group, hosts) in renderings(step) {
            for host in hosts {
                out.push(Step {
                    id: &step.id,
                    host,
                    status: group.status,
                    reason: group.reason.as_deref(),
                    fingerprint: &group.fingerprint,
                    known: group.output.is_some(),
                });
            }
        }
        out
    }

    /// `` `id` ``, or `` `id` on `web1` `` in a fleet.
    fn label(&self) -> String {
        match self.host {
            Some(host) => format!("`{}` on `{host}`", self.id),
            None => format!("`{}`", self.id),
        }
    }

    /// What will happen to it, in words (`is skipped (`x` is false)`), or in the plan's past.
    fn described(&self, now: bool) -> String {
        let reason = self.reason.map_or_else(String::new, |r| format!(" ({r})"));
        let (will, is) = if now { ("will", "is") } else { ("would", "was") };
        match self.status {
            Status::WillRun => format!("{will} run"),
            Status::Skipped => format!("{is} skipped{reason}"),
            Status::DecidedAtRunTime => format!("{is} decided at run time{reason}"),
        }
    }
}

/// A status as plans write it.
fn status_name(status: Status) -> &'static str {
    match status {
        Status::WillRun => "will-run",
        Status::Skipped => "skipped",
        Status::DecidedAtRunTime => "decided-at-run-time",
    }
}

/// The first 12 characters of a digest, as people compare them.
fn short(digest: &str) -> &str {
    digest.char_indices().nth(12).map_or(digest, |(at, _)| &digest[..at])
}

fn labels(list: &[String]) -> String {
    list.join(", ")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 { one.to_owned() } else { many.to_owned() }
}

/// Compares a saved plan with a plan made now, from the same inputs and the
/// recorded version choice (`plan.probed` holds what the probes read now).
pub(crate) fn compare(
    saved: &SavedPlan,
    playbook: &Playbook,
    plan: &Plan,
    targets: &Targets,
    now: jiff::Timestamp,
) -> Review {
    let mut review = Review::default();
    let out = &mut review.differences;
    match saved.expires() {
        Some(expires) if now >= expires => {
            out.push(format!("the plan expired at {} ({})", saved.expires_at, saved.expiry));
        }
        Some(_) => {}
        None => out.push(format!("the plan's expiry `{}` does not parse", saved.expires_at)),
    }
    let version = env!("CARGO_PKG_VERSION");
    if saved.upshift != version {
        out.push(format!("the plan was made by upshift {}; this is upshift {version}", saved.upshift));
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    if saved.cwd != cwd {
        out.push(format!(
            "upshift runs in `{}`; the plan was made in `{}`, and relative paths would name other files",
            cwd.display(),
            saved.cwd.display()
        ));
    }
    sources(&saved.playbook.sources, &playbook.sources, out);
    vars(&saved.vars, &playbook.vars, out);
    versions(saved, playbook, plan, &mut review);
    let out = &mut review.differences;
    checks(&saved.checks, plan, out);
    steps(saved, plan, out);
    files(&saved.files, targets, out);
    review
}

fn sources(saved: &[SourceDigest], now: &[SourceDigest], out: &mut Vec<String>) {
    for before in saved {
        match now.iter().find(|s| s.path == before.path) {
            Some(after) if after.sha256 != before.sha256 => out.push(format!(
                "{} `{}` changed since the plan: digest {} → {}",
                before.kind,
                after.file,
                short(&before.sha256),
                short(&after.sha256)
            )),
            Some(_) => {}
            None => out.push(format!("{} `{}` is no longer read", before.kind, before.file)),
        }
    }
    for after in now.iter().filter(|a| !saved.iter().any(|b| b.path == a.path)) {
        out.push(format!("{} `{}` is read now, and was not when the plan was made", after.kind, after.file));
    }
}

fn vars(saved: &IndexMap<String, serde_json::Value>, now: &IndexMap<String, serde_json::Value>, out: &mut Vec<String>) {
    for (key, before) in saved {
        match now.get(key) {
            Some(after) if after != before => out.push(format!("var `{key}` was {before}, is {after}")),
            Some(_) => {}
            None => out.push(format!("var `{key}` is no longer declared")),
        }
    }
    for (key, after) in now.iter().filter(|(k, _)| !saved.contains_key(*k)) {
        out.push(format!("var `{key}` is new since the plan ({after})"));
    }
}

fn versions(saved: &SavedPlan, playbook: &Playbook, plan: &Plan, review: &mut Review) {
    let out = &mut review.differences;
    let (saved_version, spec) = match (&saved.version, &playbook.version) {
        (Some(saved), Some(spec)) => (saved, spec),
        (None, None) => return,
        (Some(_), None) => {
            return out.push("the playbook has no `[version]` table now; the plan chose a version".into());
        }
        (None, Some(_)) => {
            return out.push("the playbook has a `[version]` table now; the plan chose no version".into());
        }
    };
    if spec.scheme != saved_version.scheme {
        return out.push(format!(
            "the version scheme was `{}`, is `{}`",
            saved_version.scheme.name(),
            spec.scheme.name()
        ));
    }
    let scheme = spec.scheme;
    let Some(probed) = &plan.probed else {
        return out.push("internal error: the versions were not probed again".into());
    };
    let (Ok(recorded_current), Ok(target)) =
        (scheme.version(&saved_version.current), scheme.version(&saved_version.selected))
    else {
        return out.push("the plan's versions do not parse".into());
    };
    match &probed.current {
        Err(why) => out.push(format!("cannot read the current version: {why}")),
        Ok(text) => match scheme.version(text) {
            Err(why) => out.push(format!("cannot read the current version: {why}")),
            Ok(current) if !current.cmp_same(&recorded_current).is_eq() => {
                out.push(format!("current version was {recorded_current}, is {current}"));
            }
            Ok(_) => {}
        },
    }
    match &probed.available {
        Err(why) => out.push(format!("cannot list the available versions: {why}")),
        Ok(texts) => {
            let available: Vec<crate::version::Version> = texts.iter().filter_map(|t| scheme.version(t).ok()).collect();
            if !available.iter().any(|v| v.cmp_same(&target).is_eq()) {
                out.push(format!("{target}, the version this plan installs, is no longer available"));
            }
            let requirement = saved_version.requirement.as_deref().and_then(|r| scheme.requirement(r).ok());
            let eligible = scheme.eligible(requirement.as_ref(), &available, spec.allow_prerelease);
            let mut newer: Vec<&crate::version::Version> = available
                .iter()
                .zip(eligible)
                .filter(|(v, ok)| {
                    *ok && v.cmp_same(&target).is_gt() && (spec.allow_major || v.major() == target.major())
                })
                .map(|(v, _)| v)
                .collect();
            newer.sort_by(|a, b| b.cmp_same(a));
            newer.dedup_by(|a, b| a.cmp_same(b).is_eq());
            if !newer.is_empty() {
                let list = newer.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                review.notes.push(format!(
                    "{list} {} available; this plan installs the reviewed {target}",
                    plural(newer.len(), "is", "are")
                ));
            }
        }
    }
}

fn checks(saved: &[SavedCheck], plan: &Plan, out: &mut Vec<String>) {
    let label = |name: &str, host: Option<&str>| match host {
        Some(host) => format!("readiness check `{name}` on `{host}`"),
        None => format!("readiness check `{name}`"),
    };
    for now in &plan.checks {
        let before = saved.iter().find(|b| b.name == now.name && b.host == now.host);
        let what = label(&now.name, now.host.as_deref());
        if now.status == "failed" {
            let hint = now.hint.as_deref().map_or_else(String::new, |h| format!(" (hint: {h})"));
            out.push(format!("{what} failed: {}{hint}", now.observed));
            continue;
        }
        match before {
            None => out.push(format!("{what} is new since the plan")),
            // A check that reads a secret runs only in `run`.
            Some(before) if before.status != now.status && before.status != "not-run" && now.status != "not-run" => {
                out.push(format!("{what} was {}, is {}", before.status, now.status));
            }
            Some(_) => {}
        }
    }
    for before in saved.iter().filter(|b| !plan.checks.iter().any(|c| c.name == b.name && c.host == b.host)) {
        out.push(format!("{} is no longer in the playbook", label(&before.name, before.host.as_deref())));
    }
}

fn steps(saved: &SavedPlan, plan: &Plan, out: &mut Vec<String>) {
    for (what, before, now) in [("step", &saved.steps, &plan.steps), ("finally step", &saved.finally, &plan.finally)] {
        let before: Vec<Step> = before.iter().flat_map(Step::of).collect();
        let now: Vec<Step> = now.iter().flat_map(Step::from_planned).collect();
        let now_by_key: std::collections::HashMap<(&str, Option<&str>), &Step> =
            now.iter().map(|n| ((n.id, n.host), n)).collect();
        let before_keys: std::collections::HashSet<(&str, Option<&str>)> =
            before.iter().map(|b| (b.id, b.host)).collect();
        let mut changed = Vec::new();
        for b in &before {
            match now_by_key.get(&(b.id, b.host)) {
                None => out.push(format!("playbook changed: {what} {} is no longer in it", b.label())),
                Some(n) => {
                    if n.fingerprint != b.fingerprint {
                        changed.push(b.label());
                    }
                    if n.status != b.status {
                        out.push(format!(
                            "{what} {} {} now; in the plan it {}",
                            b.label(),
                            n.described(true),
                            b.described(false)
                        ));
                    }
                }
            }
        }
        if !changed.is_empty() {
            let label = if changed.len() == 1 { what.to_owned() } else { format!("{what}s") };
            out.push(format!("playbook changed: {label} {}", labels(&changed)));
        }
        let added: Vec<String> =
            now.iter().filter(|n| !before_keys.contains(&(n.id, n.host))).map(Step::label).collect();
        if !added.is_empty() {
            out.push(format!("playbook changed: new {what}{} {}", plural(added.len(), "", "s"), labels(&added)));
        }
    }
    // A read-only step the plan runs failed: `run` would stop.
    for step in plan.steps.iter().filter(|s| !s.continue_on_error) {
        for (group, hosts) in renderings(step) {
            if let Some(output) = group.output.as_ref().filter(|o| o.exit_code != Some(0)) {
                let code = output.exit_code.map_or_else(|| "none".to_owned(), |c| c.to_string());
                let on = match hosts.as_slice() {
                    [None] => String::new(),
                    hosts => format!(
                        " on {}",
                        hosts.iter().flatten().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", ")
                    ),
                };
                out.push(format!(
                    "read-only step `{}`{on} failed (exit code {code}): {}",
                    step.id,
                    output.stdout.lines().next().unwrap_or("")
                ));
            }
        }
    }
}

fn files(saved: &[FileDigest], targets: &Targets, out: &mut Vec<String>) {
    for before in saved {
        let now = digest_on(targets, before.host.as_deref(), &before.path, before.secret);
        let on = before.host.as_deref().filter(|h| *h != LOCAL).map_or_else(String::new, |h| format!(" on `{h}`"));
        let shown = match &before.host {
            Some(host) if host != LOCAL => before.path.clone(),
            _ => crate::diagnostic::display_path(&now.resolved),
        };
        if now.resolved != before.resolved {
            out.push(format!(
                "`{}` names `{}` now; the plan read `{}`",
                before.path,
                now.resolved.display(),
                before.resolved.display()
            ));
            continue;
        }
        match (before.exists, now.exists) {
            (true, false) => out.push(format!("`{shown}`{on} was removed since the plan")),
            (false, true) => out.push(format!("`{shown}`{on} was created since the plan")),
            (false, false) => {}
            (true, true) => {
                if let Some(error) = &now.error {
                    out.push(format!("`{shown}`{on} cannot be read now: {error}"));
                } else if before.sha256 != now.sha256 && !before.secret {
                    out.push(format!(
                        "`{shown}`{on} changed since the plan: digest {} → {}",
                        before.sha256.as_deref().map_or("(unreadable)", short),
                        now.sha256.as_deref().map_or("(unreadable)", short)
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_and_var_differences_read_as_words() {
        let source = |file: &str, sha: &str| SourceDigest {
            kind: "include".into(),
            file: file.into(),
            path: PathBuf::from(format!("/p/{file}")),
            sha256: sha.into(),
        };
        let mut out = Vec::new();
        sources(
            &[source("a.toml", "aaaaaaaaaaaaaaaa"), source("gone.toml", "1")],
            &[source("a.toml", "bbbbbbbbbbbbbbbb"), source("new.toml", "2")],
            &mut out,
        );
        assert_eq!(
            out,
            [
                "include `a.toml` changed since the plan: digest aaaaaaaaaaaa → bbbbbbbbbbbb",
                "include `gone.toml` is no longer read",
                "include `new.toml` is read now, and was not when the plan was made",
            ]
        );
        let mut out = Vec::new();
        let before: IndexMap<String, serde_json::Value> =
            [("root".to_owned(), "/srv/a".into()), ("old".to_owned(), 1.into())].into_iter().collect();
        let after: IndexMap<String, serde_json::Value> =
            [("root".to_owned(), "/srv/b".into()), ("new".to_owned(), true.into())].into_iter().collect();
        vars(&before, &after, &mut out);
        assert_eq!(
            out,
            [
                "var `root` was \"/srv/a\", is \"/srv/b\"",
                "var `old` is no longer declared",
                "var `new` is new since the plan (true)",
            ]
        );
    }

    #[test]
    fn a_file_digest_sees_content_creation_and_removal_but_not_a_secret_files_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("composer.json");
        std::fs::write(&path, "{}").unwrap();
        let text = path.display().to_string();
        let plain = digest_file(&text, false);
        let secret = digest_file(&text, true);
        assert!(plain.exists && plain.sha256.is_some());
        assert!(secret.exists && secret.sha256.is_none(), "no digest of a file that holds a secret");
        std::fs::write(&path, "{\"a\": 1}").unwrap();
        let mut out = Vec::new();
        files(&[plain.clone(), secret.clone()], &Targets::local(), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].ends_with(&format!(
            "changed since the plan: digest {} → {}",
            short(plain.sha256.as_deref().unwrap()),
            short(digest_file(&text, false).sha256.as_deref().unwrap())
        )));
        std::fs::remove_file(&path).unwrap();
        let mut out = Vec::new();
        files(&[plain, secret], &Targets::local(), &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|line| line.ends_with("was removed since the plan")), "{out:?}");
    }
}
