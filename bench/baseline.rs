//! The baseline for `bench/run.sh`: the least a journalling runner must do.
//! For each of N steps it spawns `sh -c true`, waits, and appends and fsyncs
//! two small JSON records (started, finished) to a journal.
use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).expect("usage: baseline N JOURNAL");
    let path = args.next().expect("usage: baseline N JOURNAL");
    let mut journal = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("journal");
    for i in 0..n {
        writeln!(journal, "{{\"type\":\"started\",\"step\":\"s{i}\"}}").unwrap();
        journal.sync_data().unwrap();
        let status = std::process::Command::new("sh").args(["-c", "true"]).status().unwrap();
        writeln!(journal, "{{\"type\":\"finished\",\"step\":\"s{i}\",\"exit_code\":{}}}", status.code().unwrap_or(-1)).unwrap();
        journal.sync_data().unwrap();
    }
}
