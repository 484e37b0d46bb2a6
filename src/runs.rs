//! Runs read back from their journals, for `status`, `resume`, `rollback` and
//! the check `run` makes for an unfinished run. One pass over a journal
//! builds where every step stands; finding the unfinished run of a playbook
//! reads only the last line of each finished run's journal, and finding the
//! run that applied a saved plan only the first line (the header).
//!
//! This module reads; it never appends (that is the engine's).

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::Exit;
use crate::check::Inputs;
use crate::engine::Failure;
use crate::journal::{self, Header, Outcome, Phase, Record, RunOutcome};

/// Where a playbook's runs live: `STATE/runs/NAME@ENV/`.
pub(crate) fn runs_dir(state_dir: &Path, playbook: &str, environment: Option<&str>) -> PathBuf {
    let clean = |s: &str| {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect::<String>()
    };
    state_dir.join("runs").join(format!("{}@{}", clean(playbook), clean(environment.unwrap_or("default"))))
}

/// Where one step stands in a run, for one target.
#[derive(Debug, Clone)]
pub(crate) struct StepState {
    pub(crate) phase: Phase,
    pub(crate) step: String,
    pub(crate) target: String,
    /// Of its last start (empty for a step that was only skipped).
    pub(crate) fingerprint: String,
    /// `None`: started and never finished (a crash or a signal).
    pub(crate) outcome: Option<Outcome>,
    pub(crate) reason: Option<String>,
    pub(crate) stdout: String,
    pub(crate) exit_code: Option<i32>,
    /// How long its last finished try took.
    pub(crate) duration_ms: Option<u64>,
    /// How many times it started.
    pub(crate) starts: u32,
    /// The process group of an unfinished start: `(pgid, leader start time)`.
    pub(crate) process: Option<(u32, u64)>,
    /// What its last start saw: `step.attempt`, `step.interrupted`, `run.resumed`.
    pub(crate) last_try: Option<(u32, bool, bool)>,
}

type Key = (Phase, String, String);

/// One journalled run, read back.
#[derive(Debug)]
pub(crate) struct RunRecord {
    pub(crate) path: PathBuf,
    pub(crate) header: Header,
    /// Every (phase, step, target) in the order of its latest record.
    pub(crate) steps: IndexMap<Key, StepState>,
    pub(crate) end: Option<(RunOutcome, Vec<String>)>,
    /// Bytes up to the end of the last good record.
    pub(crate) valid_len: u64,
    /// A torn last line was ignored.
    pub(crate) torn: bool,
    /// Keep each step's output (reading a journal back; the engine doesn't need it).
    keep_output: bool,
    /// A `resumed` record was seen (for `run.resumed` of later starts).
    resumed: bool,
    /// An `undo` record was seen: this finished run is being (or was) undone.
    pub(crate) undo: bool,
}

impl RunRecord {
    /// A run that has only its header (the engine's view of a new run). It
    /// keeps no step output: the engine's contexts have it.
    pub(crate) fn new(path: PathBuf, header: Header) -> RunRecord {
        RunRecord {
            path,
            header,
            steps: IndexMap::new(),
            end: None,
            valid_len: 0,
            torn: false,
            keep_output: false,
            resumed: false,
            undo: false,
        }
    }

    fn from_records(path: &Path, records: Vec<Record>, valid_len: u64, torn: bool) -> Result<RunRecord, String> {
        let mut records = records.into_iter();
        let header = match records.next() {
            Some(Record::Run(header)) => *header,
            _ => return Err(format!("`{}` has no run header: it is not an upshift journal", path.display())),
        };
        let mut run = RunRecord { valid_len, torn, keep_output: true, ..RunRecord::new(path.to_owned(), header) };
        for record in records {
            run.apply(record);
        }
        Ok(run)
    }

    /// The entry of `key`, moved to the end (the newest record).
    fn entry(&mut self, phase: Phase, step: String, target: String) -> &mut StepState {
        let key = (phase, step, target);
        let index = match self.steps.get_index_of(&key) {
            Some(index) if index + 1 == self.steps.len() => index,
            Some(index) => {
                let (key, state) = self.steps.shift_remove_index(index).expect("the index exists");
                self.steps.insert(key, state);
                self.steps.len() - 1
            }
            None => {
                let state = StepState {
                    phase,
                    step: key.1.clone(),
                    target: key.2.clone(),
                    fingerprint: String::new(),
                    outcome: None,
                    reason: None,
                    stdout: String::new(),
                    exit_code: None,
                    duration_ms: None,
                    starts: 0,
                    process: None,
                    last_try: None,
                };
                self.steps.insert(key, state);
                self.steps.len() - 1
            }
        };
        &mut self.steps[index]
    }

    /// Takes one more record into account (the engine, as it appends).
    pub(crate) fn apply_ref(&mut self, record: &Record) {
        match record {
            Record::Started { step, phase, fingerprint, target, .. } => {
                let resumed = self.resumed;
                let state = self.entry(*phase, step.clone(), target.clone());
                let interrupted = state.starts > 0 && state.outcome.is_none();
                state.last_try = Some((state.starts + 1, interrupted, resumed));
                state.fingerprint.clone_from(fingerprint);
                state.outcome = None;
                state.reason = None;
                state.starts += 1;
                state.process = None;
            }
            Record::Spawned { step, phase, target, pgid, start, .. } => {
                let key = (*phase, step.clone(), target.clone());
                if let Some(state) = self.steps.get_mut(&key) {
                    state.process = Some((*pgid, *start));
                }
            }
            Record::Finished { step, phase, outcome, reason, exit_code, stdout, target, duration_ms, .. } => {
                let keep = self.keep_output;
                let state = self.entry(*phase, step.clone(), target.clone());
                state.outcome = Some(*outcome);
                state.reason.clone_from(reason);
                state.exit_code = *exit_code;
                state.duration_ms = Some(*duration_ms);
                if keep {
                    state.stdout.clone_from(stdout);
                }
                state.process = None;
            }
            Record::End { outcome, left, .. } => self.end = Some((*outcome, left.clone())),
            Record::Resumed { .. } => self.resumed = true,
            Record::Undo { .. } => {
                // A new pass: the run is unfinished until its next end, and
                // the `finally` steps of the earlier pass are owed again.
                self.end = None;
                self.undo = true;
                self.steps.retain(|key, _| key.0 != Phase::Finally);
            }
            Record::Run(_) | Record::Interrupted { .. } => {}
        }
    }

    fn apply(&mut self, record: Record) {
        self.apply_ref(&record);
    }

    /// Not finished: crashed, interrupted, or a rollback left work.
    pub(crate) fn unfinished(&self) -> bool {
        matches!(self.end, None | Some((RunOutcome::RollbackIncomplete, _)))
    }

    /// The steps of a phase, in the order of their latest record.
    pub(crate) fn phase(&self, phase: Phase) -> impl Iterator<Item = &StepState> {
        self.steps.values().filter(move |s| s.phase == phase)
    }

    /// The step the run stopped in, if it stopped in one.
    pub(crate) fn stopped_in(&self) -> Option<&StepState> {
        self.steps.values().rev().find(|s| s.outcome.is_none())
    }

    pub(crate) fn describe(&self) -> String {
        match (&self.end, self.stopped_in()) {
            (Some((RunOutcome::RolledBack, _)), _) if self.undo => "undone".to_owned(),
            (Some((outcome, _)), _) => {
                let name =
                    serde_json::to_value(outcome).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                if self.undo { format!("{name} (during its undo)") } else { name }
            }
            (None, Some(state)) => {
                let phase = match state.phase {
                    Phase::Step => "",
                    Phase::Rollback => " (rollback)",
                    Phase::Finally => " (finally)",
                };
                format!("unfinished: stopped during `{}`{phase}", state.step)
            }
            (None, None) => "unfinished".to_owned(),
        }
    }

    /// The inputs that load this run's playbook again: its environment. (Its
    /// final vars come from the journal: the engine puts them back.)
    pub(crate) fn inputs(&self) -> Inputs {
        Inputs { env: self.header.environment.clone(), ..Inputs::default() }
    }
}

/// Reads one run's journal.
pub(crate) fn read_run(path: &Path) -> Result<RunRecord, Failure> {
    let loaded = journal::load(path).map_err(|message| {
        Failure::new(Exit::RollbackIncomplete, message).help("the journal is damaged; inspect it before going on")
    })?;
    RunRecord::from_records(path, loaded.records, loaded.valid_len, loaded.torn)
        .map_err(|message| Failure::new(Exit::RollbackIncomplete, message))
}

/// A file among the journals that could not be read as one.
#[derive(Debug)]
pub(crate) struct Unreadable {
    pub(crate) path: PathBuf,
    pub(crate) reason: String,
    /// Its first line is a run header: a real run whose journal is damaged.
    pub(crate) run_id: Option<String>,
}

/// The journals of one playbook+environment directory, oldest first.
fn journal_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    paths.sort();
    paths
}

/// The directories holding runs: one playbook's, or every playbook's.
fn run_dirs(state_dir: &Path, playbook: Option<(&str, Option<&str>)>) -> Vec<PathBuf> {
    match playbook {
        Some((name, env)) => vec![runs_dir(state_dir, name, env)],
        None => {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(state_dir.join("runs"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()))
                .collect();
            dirs.sort();
            dirs
        }
    }
}

fn unreadable(path: &Path, reason: String) -> Unreadable {
    // A damaged journal of a real run still starts with its header.
    let run_id = crate::files::read_private(path).ok().and_then(|bytes| {
        let first = bytes.split(|b| *b == b'\n').next()?.to_vec();
        let value: serde_json::Value = serde_json::from_slice(&first).ok()?;
        (value["type"] == "run").then(|| value["run_id"].as_str().map(str::to_owned)).flatten()
    });
    let reason = if run_id.is_none() { format!("not an upshift journal ({reason})") } else { reason };
    Unreadable { path: path.to_owned(), reason, run_id }
}

/// Where a run's whole output is kept, masked: `RUN.log` beside its journal.
pub(crate) fn log_path(journal: &Path) -> PathBuf {
    journal.with_extension("log")
}

/// Every run (oldest first) and every journal that could not be read.
pub(crate) fn list_runs(state_dir: &Path, playbook: Option<(&str, Option<&str>)>) -> (Vec<RunRecord>, Vec<Unreadable>) {
    let mut runs = Vec::new();
    let mut bad = Vec::new();
    for dir in run_dirs(state_dir, playbook) {
        for path in journal_paths(&dir) {
            match read_run(&path) {
                Ok(run) => runs.push(run),
                Err(failure) => bad.push(unreadable(&path, failure.message)),
            }
        }
    }
    runs.sort_by(|a, b| a.header.run_id.cmp(&b.header.run_id));
    (runs, bad)
}

/// True when the journal's last line is the end of a finished run: no need
/// to read the rest. Reads only the tail of the file.
fn ended(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(mut file) =
        std::fs::OpenOptions::new().read(true).custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32).open(path)
    else {
        return false;
    };
    let Ok(len) = file.metadata().map(|m| m.len()) else { return false };
    let window = len.min(64 * 1024);
    if file.seek(SeekFrom::Start(len - window)).is_err() {
        return false;
    }
    let mut tail = Vec::with_capacity(window as usize);
    if file.read_to_end(&mut tail).is_err() || !tail.ends_with(b"\n") {
        return false;
    }
    let body = &tail[..tail.len() - 1];
    let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if start == 0 && window < len {
        return false;
    }
    matches!(
        journal::parse_line(&tail[start..]),
        Ok(Record::End { outcome, .. }) if outcome != RunOutcome::RollbackIncomplete
    )
}

/// The unfinished runs (oldest first), reading in full only the journals
/// that do not end with a finished run's last record.
pub(crate) fn unfinished_runs(
    state_dir: &Path,
    playbook: Option<(&str, Option<&str>)>,
) -> (Vec<RunRecord>, Vec<Unreadable>) {
    let mut runs = Vec::new();
    let mut bad = Vec::new();
    for dir in run_dirs(state_dir, playbook) {
        for path in journal_paths(&dir) {
            if ended(&path) {
                continue;
            }
            match read_run(&path) {
                Ok(run) if run.unfinished() => runs.push(run),
                Ok(_) => {}
                Err(failure) => bad.push(unreadable(&path, failure.message)),
            }
        }
    }
    runs.sort_by(|a, b| a.header.run_id.cmp(&b.header.run_id));
    (runs, bad)
}

/// Finds the run `resume` or `rollback` works on: the newest unfinished run
/// of the playbook, or the only unfinished run in the state dir.
pub(crate) fn find_unfinished(
    state_dir: &Path,
    playbook: Option<(&str, Option<&str>)>,
) -> Result<(RunRecord, Vec<Unreadable>), Failure> {
    let (mut unfinished, bad) = unfinished_runs(state_dir, playbook);
    if let Some(damaged) = bad.iter().find(|b| b.run_id.is_some()) {
        return Err(Failure::new(Exit::RollbackIncomplete, damaged.reason.clone()).help(format!(
            "run `{}` cannot be continued from a damaged journal: inspect `{}`, finish by hand, then move it aside",
            damaged.run_id.as_deref().unwrap_or(""),
            damaged.path.display()
        )));
    }
    match (unfinished.len(), playbook) {
        (0, _) => Err(Failure::new(Exit::Invalid, "there is no unfinished run to continue")
            .help("`upshift status` lists the runs")),
        (1, _) | (_, Some(_)) => Ok((unfinished.pop().expect("not empty"), bad)),
        (_, None) => Err(Failure::new(Exit::Invalid, "there are several unfinished runs; name the playbook").details(
            unfinished
                .iter()
                .map(|r| {
                    format!(
                        "{} ({}, run {})",
                        r.header.file.display(),
                        r.header.environment.as_deref().unwrap_or("no env"),
                        r.header.run_id
                    )
                })
                .collect(),
        )),
    }
}

/// A journal's first record, its header, read without the rest of the file.
fn header(path: &Path) -> Option<Header> {
    use std::io::BufRead;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .ok()?;
    let mut line = Vec::new();
    std::io::BufReader::new(file).read_until(b'\n', &mut line).ok()?;
    match journal::parse_line(&line) {
        Ok(Record::Run(header)) => Some(*header),
        _ => None,
    }
}

/// The run that applied the saved plan `plan_id`, if one did: its id and
/// journal. Reads only the first line of each journal of the playbook.
pub(crate) fn applied_by(state_dir: &Path, playbook: (&str, Option<&str>), plan_id: &str) -> Option<(String, PathBuf)> {
    journal_paths(&runs_dir(state_dir, playbook.0, playbook.1)).into_iter().find_map(|path| {
        let header = header(&path)?;
        (header.plan.as_ref().is_some_and(|p| p.id == plan_id)).then_some((header.run_id, path))
    })
}

/// The run with this id, wherever its playbook is.
pub(crate) fn find_run(state_dir: &Path, run_id: &str) -> Result<RunRecord, Failure> {
    // Run ids are a timestamp and a number: nothing that could name another path.
    if run_id.is_empty() || !run_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Failure::new(Exit::Invalid, format!("`{run_id}` is not a run id"))
            .help("`upshift status` lists the runs and their ids"));
    }
    let name = format!("{run_id}.jsonl");
    let found = run_dirs(state_dir, None).into_iter().map(|dir| dir.join(&name)).find(|path| path.is_file());
    match found {
        Some(path) => read_run(&path),
        None => {
            Err(Failure::new(Exit::Invalid, format!("there is no run `{run_id}`"))
                .help("`upshift status` lists the runs"))
        }
    }
}

/// The newest run of a playbook (or of the whole state dir), read in full;
/// only its journal is read.
pub(crate) fn latest_run(
    state_dir: &Path,
    playbook: Option<(&str, Option<&str>)>,
) -> Option<Result<RunRecord, Failure>> {
    let newest = run_dirs(state_dir, playbook)
        .into_iter()
        .flat_map(|dir| journal_paths(&dir))
        .max_by(|a, b| a.file_name().cmp(&b.file_name()))?;
    Some(read_run(&newest))
}

/// The runs of the same playbook and environment that started after `record`, oldest first.
pub(crate) fn later_runs(state_dir: &Path, record: &RunRecord) -> Vec<RunRecord> {
    let dir = runs_dir(state_dir, &record.header.playbook, record.header.environment.as_deref());
    let mut later: Vec<RunRecord> = journal_paths(&dir)
        .into_iter()
        .filter(|path| *path != record.path)
        .filter_map(|path| read_run(&path).ok())
        .filter(|run| run.header.run_id > record.header.run_id)
        .collect();
    later.sort_by(|a, b| a.header.run_id.cmp(&b.header.run_id));
    later
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Record {
        Record::Run(Box::new(Header {
            v: journal::JOURNAL_FORMAT,
            run_id: "r1".into(),
            playbook: "p".into(),
            file: PathBuf::from("p.toml"),
            fingerprint: String::new(),
            environment: None,
            vars: IndexMap::new(),
            selection: None,
            started_at: String::new(),
            target: "local".into(),
            host: "h".into(),
            user: "u".into(),
            pid: 1,
            window: None,
            boot_id: None,
            host_vars: IndexMap::new(),
            plan: None,
        }))
    }

    fn started(step: &str, phase: Phase) -> Record {
        Record::Started {
            step: step.into(),
            phase,
            fingerprint: "f".into(),
            action: String::new(),
            target: "local".into(),
            at: String::new(),
        }
    }

    fn finished(step: &str, phase: Phase, outcome: Outcome) -> Record {
        Record::Finished {
            step: step.into(),
            phase,
            outcome,
            reason: None,
            exit_code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            duration_ms: 0,
            target: "local".into(),
            at: String::new(),
        }
    }

    #[test]
    fn one_pass_knows_where_every_step_stands() {
        let records = vec![
            header(),
            started("a", Phase::Step),
            finished("a", Phase::Step, Outcome::Ok),
            started("b", Phase::Step),
            Record::Spawned {
                step: "b".into(),
                phase: Phase::Step,
                target: "local".into(),
                pgid: 42,
                start: 7,
                at: String::new(),
            },
            finished("c", Phase::Step, Outcome::Skipped),
            started("b", Phase::Step),
        ];
        let run = RunRecord::from_records(Path::new("r.jsonl"), records, 0, false).unwrap();
        let order: Vec<&str> = run.phase(Phase::Step).map(|s| s.step.as_str()).collect();
        assert_eq!(order, ["a", "c", "b"], "a step started again is the newest");
        let b = run.stopped_in().unwrap();
        assert_eq!((b.step.as_str(), b.starts, b.process), ("b", 2, None));
        assert!(run.unfinished());
        assert_eq!(run.describe(), "unfinished: stopped during `b`");
    }

    #[test]
    fn an_undo_opens_a_new_pass_whose_finally_steps_are_owed_again() {
        let records = vec![
            header(),
            started("a", Phase::Step),
            finished("a", Phase::Step, Outcome::Ok),
            started("f", Phase::Finally),
            finished("f", Phase::Finally, Outcome::Ok),
            Record::End { outcome: RunOutcome::Succeeded, left: Vec::new(), at: String::new() },
        ];
        let mut run = RunRecord::from_records(Path::new("r.jsonl"), records, 0, false).unwrap();
        assert!(!run.unfinished());
        run.apply_ref(&Record::Undo { pid: 1, user: "u".into(), at: String::new() });
        assert!(run.unfinished() && run.undo);
        assert_eq!(run.describe(), "unfinished");
        assert_eq!(run.phase(Phase::Finally).count(), 0, "the earlier pass's finally steps are owed again");
        assert_eq!(run.phase(Phase::Step).count(), 1, "the completed steps stay, to be undone");
    }
}
