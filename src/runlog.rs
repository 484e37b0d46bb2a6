//! The run log: every output line of every step of a run, masked, in
//! `RUN.log` beside the run's journal (which keeps only a tail), for
//! `status RUN_ID --log`. Append-only, 0600, flushed to disk before each
//! journal record is, so it is never behind what the journal says happened.
//!
//! The log serves people; it decides nothing. When it cannot be written the
//! run goes on, and says so once.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::journal::Phase;
use crate::process::Stream;

/// An open run log.
#[derive(Debug)]
pub(crate) struct RunLog {
    path: PathBuf,
    file: Option<File>,
    /// Written to since the last sync.
    dirty: bool,
    /// The headings of the steps whose output comes next, by host (`""`
    /// on this machine alone), each written with its first line.
    pending: Vec<(String, String)>,
    /// Why the log stopped, not yet told.
    problem: Option<String>,
}

impl RunLog {
    /// Opens (creating it 0600, or appending to it on resume) the log beside `journal`.
    pub(crate) fn open(journal: &Path) -> RunLog {
        use std::os::unix::fs::OpenOptionsExt;
        let path = crate::runs::log_path(journal);
        let opened = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path);
        let mut log = RunLog { path, file: None, dirty: false, pending: Vec::new(), problem: None };
        match opened {
            Ok(file) => log.file = Some(file),
            Err(error) => log.stop(&error),
        }
        log
    }

    fn stop(&mut self, error: &std::io::Error) {
        self.file = None;
        self.problem = Some(format!(
            "cannot write the run log `{}`: {}; the journal keeps the tail of each step's output",
            self.path.display(),
            crate::document::io_reason(error)
        ));
    }

    /// A step (or its rollback) starts, on a host of a fleet or here: its
    /// heading precedes its first line of output.
    pub(crate) fn begin(&mut self, step: &str, host: Option<&str>, phase: Phase, attempt: u32) {
        let phase = match phase {
            Phase::Step => "step",
            Phase::Rollback => "rollback",
            Phase::Finally => "finally",
        };
        let attempt = if attempt > 1 { format!(", try {attempt}") } else { String::new() };
        let on = host.map_or_else(String::new, |h| format!(" on {h}"));
        let key = host.unwrap_or_default().to_owned();
        self.pending.retain(|(h, _)| *h != key);
        self.pending.push((key, format!("── {step}{on} ({phase}{attempt}) ──\n")));
    }

    /// One line of output, already masked. In a fleet, where hosts' lines
    /// interleave, each line names its host.
    pub(crate) fn line(&mut self, host: Option<&str>, stream: Stream, line: &str) {
        let Some(file) = &mut self.file else { return };
        let gutter = match stream {
            Stream::Stdout => "out| ",
            Stream::Stderr => "err| ",
        };
        let key = host.unwrap_or_default();
        let heading = match self.pending.iter().position(|(h, _)| h == key) {
            Some(at) => self.pending.remove(at).1,
            None => String::new(),
        };
        let tag = host.map_or_else(String::new, |h| format!("{h} "));
        let written = file.write_all(format!("{heading}{tag}{gutter}{line}\n").as_bytes());
        match written {
            Ok(()) => self.dirty = true,
            Err(error) => self.stop(&error),
        }
    }

    /// Puts what was written on disk (before the journal's next record is).
    pub(crate) fn sync(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        if let Some(file) = &self.file
            && let Err(error) = file.sync_data()
        {
            self.stop(&error);
        }
    }

    /// Why the log stopped, once.
    pub(crate) fn problem(&mut self) -> Option<String> {
        self.problem.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_come_with_the_first_line_and_the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("r.jsonl");
        let mut log = RunLog::open(&journal);
        log.begin("quiet", None, Phase::Step, 1);
        log.begin("loud", None, Phase::Step, 2);
        log.line(None, Stream::Stdout, "one");
        log.line(None, Stream::Stderr, "two");
        log.sync();
        let mut again = RunLog::open(&journal);
        again.begin("undo", None, Phase::Rollback, 1);
        again.line(None, Stream::Stdout, "three");
        let text = std::fs::read_to_string(dir.path().join("r.log")).unwrap();
        assert_eq!(text, "── loud (step, try 2) ──\nout| one\nerr| two\n── undo (rollback) ──\nout| three\n");
        let mode = std::fs::metadata(dir.path().join("r.log")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(log.problem().is_none());
    }

    #[test]
    fn in_a_fleet_each_host_has_its_heading_and_each_line_names_its_host() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("r.jsonl");
        let mut log = RunLog::open(&journal);
        log.begin("deploy", Some("web1"), Phase::Step, 1);
        log.begin("deploy", Some("web2"), Phase::Step, 1);
        log.line(Some("web2"), Stream::Stdout, "b");
        log.line(Some("web1"), Stream::Stdout, "a");
        log.line(Some("web2"), Stream::Stderr, "c");
        let text = std::fs::read_to_string(dir.path().join("r.log")).unwrap();
        assert_eq!(
            text,
            "── deploy on web2 (step) ──\nweb2 out| b\n── deploy on web1 (step) ──\nweb1 out| a\nweb2 err| c\n"
        );
    }
}
