//! The journal: one append-only JSON Lines file per run under the state dir.
//! Every record carries its own checksum (`sum`, over the record's JSON
//! without it) and is fsynced before the runner moves on. A torn last line (a
//! crash mid-write) is detected and ignored; damage anywhere else is an error,
//! never a guess. Files are 0600, directories 0700.
//!
//! This module reads and writes records; what they mean is the engine's.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The journal's format version.
pub(crate) const JOURNAL_FORMAT: u32 = 1;

/// Which list a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Phase {
    Step,
    Finally,
    Rollback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    Ok,
    Failed,
    Skipped,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RunOutcome {
    Succeeded,
    RolledBack,
    RollbackIncomplete,
    /// A `finally` step failed after the steps succeeded or were rolled back.
    FinallyFailed,
}

/// The version choice, as journalled: resume restores it, never selects again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct SavedSelection {
    pub(crate) scheme: crate::version::Scheme,
    pub(crate) current: String,
    pub(crate) target: String,
    pub(crate) change: String,
    pub(crate) candidates: Vec<String>,
    pub(crate) requirement: Option<String>,
    pub(crate) reason: String,
    pub(crate) requirements: IndexMap<String, String>,
    pub(crate) matrix_row: Option<String>,
}

/// The first record of a run. Never holds a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) v: u32,
    pub(crate) run_id: String,
    pub(crate) playbook: String,
    pub(crate) file: PathBuf,
    pub(crate) fingerprint: String,
    pub(crate) environment: Option<String>,
    pub(crate) vars: IndexMap<String, serde_json::Value>,
    pub(crate) selection: Option<SavedSelection>,
    pub(crate) started_at: String,
    pub(crate) target: String,
    pub(crate) host: String,
    pub(crate) user: String,
    pub(crate) pid: u32,
    /// Set when `run` started outside the window with `--ignore-window`.
    pub(crate) window: Option<String>,
    /// This boot of the machine (`/proc/sys/kernel/random/boot_id`): process
    /// records of another boot name processes that cannot still run.
    #[serde(default)]
    pub(crate) boot_id: Option<String>,
    /// In a fleet: each host's variables (its own values included), by host.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub(crate) host_vars: IndexMap<String, IndexMap<String, serde_json::Value>>,
    /// The saved plan this run executes (`run --plan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) plan: Option<PlanRef>,
}

/// The saved plan a run executes: enough to check every step against it,
/// also after a crash, without the plan file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct PlanRef {
    pub(crate) id: String,
    /// The plan file, as `run --plan` was given it (absolute).
    pub(crate) file: PathBuf,
    pub(crate) steps: Vec<ReviewedStep>,
}

/// One step as the reviewed plan rendered it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ReviewedStep {
    pub(crate) phase: Phase,
    pub(crate) id: String,
    /// `will-run`, `skipped` or `decided-at-run-time`.
    pub(crate) status: String,
    pub(crate) fingerprint: String,
    /// The plan knew its result (a read-only step it ran).
    pub(crate) known: bool,
    /// In a fleet: the target this rendering is for (none: this machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) host: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Record {
    Run(Box<Header>),
    Started {
        step: String,
        phase: Phase,
        fingerprint: String,
        /// The rendered command or action, secrets masked.
        action: String,
        target: String,
        at: String,
    },
    Finished {
        step: String,
        phase: Phase,
        outcome: Outcome,
        reason: Option<String>,
        exit_code: Option<i32>,
        /// Trimmed; a bounded tail, secrets masked.
        stdout: String,
        stderr: String,
        duration_ms: u64,
        target: String,
        at: String,
    },
    /// A step's command started as process group `pgid`. Written without
    /// fsync: it only matters while the machine stays up, and the next fsynced
    /// record carries it to disk.
    Spawned {
        step: String,
        phase: Phase,
        target: String,
        pgid: u32,
        /// The group leader's start time (clock ticks since boot), so a reused pid is not mistaken for it.
        start: u64,
        at: String,
    },
    Interrupted {
        step: Option<String>,
        signal: String,
        at: String,
    },
    Resumed {
        pid: u32,
        accepted_changes: Vec<String>,
        at: String,
    },
    /// `rollback --run`: a finished run is being undone. The run is
    /// unfinished again until its next `end`; `finally` runs again.
    Undo {
        pid: u32,
        user: String,
        at: String,
    },
    End {
        outcome: RunOutcome,
        /// What an operator must still undo or check.
        left: Vec<String>,
        at: String,
    },
}

/// An open journal, appending.
#[derive(Debug)]
pub(crate) struct Journal {
    pub(crate) path: PathBuf,
    file: File,
}

fn checksum(body: &str) -> String {
    crate::diagnostic::hex(&Sha256::digest(body.as_bytes())[..8])
}

/// Makes `dir` a private directory (0700) of this user: created with its
/// parents when missing, tightened when it is ours but open to others. A
/// symlink or another user's directory is refused: state is never written
/// through a link an attacker could plant.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    match std::fs::symlink_metadata(dir) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            // A race may have put something else there: check what is there now.
            let meta = std::fs::symlink_metadata(dir)?;
            if !meta.is_dir() {
                return Err(refused(dir, "is not a directory"));
            }
            Ok(())
        }
        Err(error) => Err(error),
        Ok(meta) if meta.file_type().is_symlink() => Err(refused(dir, "is a symlink")),
        Ok(meta) if !meta.is_dir() => Err(refused(dir, "is not a directory")),
        Ok(meta) => {
            let me = rustix::process::geteuid().as_raw();
            if meta.uid() != me && me != 0 {
                return Err(refused(dir, &format!("belongs to uid {}, not to this user", meta.uid())));
            }
            if meta.mode() & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
            Ok(())
        }
    }
}

fn refused(path: &Path, why: &str) -> std::io::Error {
    std::io::Error::other(format!("`{}` {why}; refusing to keep state there", path.display()))
}

/// Fsyncs a directory, so a new or renamed entry in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Journal {
    /// Creates a new journal whose first record is `first`. The file appears
    /// whole (written aside, fsynced, renamed), so no journal ever lacks its header.
    pub(crate) fn create(path: &Path, first: &Record) -> std::io::Result<Journal> {
        let dir = path.parent().expect("a journal lives in a directory");
        create_private_dir(dir)?;
        if path.exists() {
            return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "the journal exists"));
        }
        crate::files::write_atomic(path, line(first)?.as_bytes(), 0o600)?;
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Journal { path: path.to_owned(), file })
    }

    /// Opens an existing journal to append to it. A torn last line is cut off
    /// first, so the next record starts on a line of its own.
    pub(crate) fn reopen(path: &Path, valid_len: u64) -> std::io::Result<Journal> {
        use std::os::unix::fs::OpenOptionsExt;
        let file =
            OpenOptions::new().append(true).custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32).open(path)?;
        if file.metadata()?.len() != valid_len {
            file.set_len(valid_len)?;
            file.sync_all()?;
        }
        Ok(Journal { path: path.to_owned(), file })
    }

    /// Appends one record and fsyncs it.
    pub(crate) fn append(&mut self, record: &Record) -> std::io::Result<()> {
        self.file.write_all(line(record)?.as_bytes())?;
        self.file.sync_data()
    }

    /// Appends one record without waiting for the disk (see `Record::Spawned`).
    pub(crate) fn append_unsynced(&mut self, record: &Record) -> std::io::Result<()> {
        self.file.write_all(line(record)?.as_bytes())
    }
}

/// A record as one journal line, with its checksum first.
fn line(record: &Record) -> std::io::Result<String> {
    let body = serde_json::to_string(record).map_err(std::io::Error::other)?;
    let sum = checksum(&body);
    Ok(format!("{{\"sum\":\"{sum}\",{}\n", &body[1..]))
}

/// A journal as read back.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) records: Vec<Record>,
    /// A torn last line was ignored.
    pub(crate) torn: bool,
    /// Bytes up to the end of the last good record.
    pub(crate) valid_len: u64,
}

/// Reads a journal, verifying every record's checksum.
pub(crate) fn load(path: &Path) -> Result<Loaded, String> {
    let text = crate::files::read_private(path)
        .map_err(|error| format!("cannot read journal `{}`: {}", path.display(), crate::document::io_reason(&error)))?;
    let mut records = Vec::new();
    let mut offset = 0usize;
    let mut torn = false;
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    for (index, line) in lines.iter().enumerate() {
        let last = index + 1 == lines.len();
        let complete = line.ends_with(b"\n");
        // Only a last line without its newline is torn (a crash mid-append);
        // a whole line that does not verify is damage, wherever it is.
        if last && !complete {
            torn = true;
            break;
        }
        match parse_line(line) {
            Ok(record) => {
                records.push(record);
                offset += line.len();
            }
            Err(why) => {
                return Err(format!("journal `{}` is damaged at line {}: {why}", path.display(), index + 1));
            }
        }
    }
    Ok(Loaded { records, torn, valid_len: offset as u64 })
}

pub(crate) fn parse_line(line: &[u8]) -> Result<Record, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    // The shape `line` writes: verify the bytes as written, parse once.
    let trimmed = text.trim_end_matches('\n');
    if let Some(rest) = trimmed.strip_prefix("{\"sum\":\"")
        && let Some((sum, body)) = rest.split_at_checked(16)
        && let Some(body) = body.strip_prefix("\",")
    {
        let body = format!("{{{body}");
        if checksum(&body) != sum {
            return Err("checksum mismatch".to_owned());
        }
        return serde_json::from_str(&body).map_err(|e| format!("unknown record: {e}"));
    }
    let mut value: serde_json::Value = serde_json::from_str(text.trim_end()).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object_mut().ok_or("not a JSON object")?;
    let sum = object.shift_remove("sum").and_then(|s| s.as_str().map(str::to_owned)).ok_or("no checksum")?;
    let body = serde_json::to_string(&value).map_err(|e| e.to_string())?;
    if checksum(&body) != sum {
        return Err("checksum mismatch".to_owned());
    }
    serde_json::from_value(value).map_err(|e| format!("unknown record: {e}"))
}

/// The current time as RFC 3339 (UTC), for records.
pub(crate) fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u32) -> Record {
        Record::Interrupted { step: Some(format!("s{n}")), signal: "SIGINT".into(), at: "t".into() }
    }

    #[test]
    fn round_trips_and_ignores_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs/r.jsonl");
        let mut journal = Journal::create(&path, &record(1)).unwrap();
        journal.append(&record(2)).unwrap();
        let whole = std::fs::read(&path).unwrap();
        // Cut the second record in half: a crash mid-write.
        let cut = whole.len() - 10;
        std::fs::write(&path, &whole[..cut]).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.records.len(), 1);
        assert!(loaded.torn);
        let mut journal = Journal::reopen(&path, loaded.valid_len).unwrap();
        journal.append(&record(3)).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.records.len(), 2);
        assert!(!loaded.torn);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn damage_before_the_last_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let mut journal = Journal::create(&path, &record(1)).unwrap();
        journal.append(&record(2)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap().replacen("s1", "s9", 1);
        std::fs::write(&path, text).unwrap();
        assert!(load(&path).unwrap_err().contains("checksum mismatch"));
    }
}
