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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// Creates a directory and its parents with mode 0700.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
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
        let file = OpenOptions::new().append(true).open(path)?;
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
    let text = std::fs::read(path)
        .map_err(|error| format!("cannot read journal `{}`: {}", path.display(), crate::document::io_reason(&error)))?;
    let mut records = Vec::new();
    let mut offset = 0usize;
    let mut torn = false;
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    for (index, line) in lines.iter().enumerate() {
        let last = index + 1 == lines.len();
        let complete = line.ends_with(b"\n");
        match parse_line(line) {
            Ok(record) if complete => {
                records.push(record);
                offset += line.len();
            }
            Ok(_) | Err(_) if last => {
                torn = true;
                break;
            }
            Err(why) => {
                return Err(format!("journal `{}` is damaged at line {}: {why}", path.display(), index + 1));
            }
            Ok(_) => unreachable!("an incomplete line is always the last"),
        }
    }
    Ok(Loaded { records, torn, valid_len: offset as u64 })
}

fn parse_line(line: &[u8]) -> Result<Record, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
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
