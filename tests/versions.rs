//! Select Version and windows from the CLI: the journal's version choice wins
//! on resume, and `run` refuses outside the window unless told otherwise.

use std::time::Duration;

use crate::Sandbox;

fn playbook(sandbox: &Sandbox) -> std::path::PathBuf {
    sandbox.write("versions.txt", "2.4.6\n2.4.6-p3\n2.4.7\n2.4.7-p1\n");
    sandbox.write("current.txt", "Magento CLI 2.4.6-p3\n");
    sandbox.write(
        "p.toml",
        r#"format = 1
name = "versions"

[version]
scheme = "composer"
current = { run = "cat current.txt", regex = '(\d+\.\d+\.\d+(?:-p\d+)?)' }
available = { run = "cat versions.txt", regex = '(?m)^(\S+)$' }
target = "~2.4.6"

[[step]]
id = "pick"
run = "echo {{ version.current }} to {{ version.target }}: {{ version.change }} p{{ version.target.patch_level }} {{ version.target.stability }} >> log"

[[step]]
id = "wait"
run = "touch waiting; while [ ! -f go ]; do sleep 0.05; done"

[[step]]
id = "again"
run = "echo still {{ version.target }} >> log"
"#,
    )
}

#[test]
fn resume_keeps_the_journalled_version_even_when_a_newer_one_appears() {
    let sandbox = Sandbox::new();
    let playbook = playbook(&sandbox);
    let child = crate::engine::spawn(&sandbox, &["run", &playbook.to_string_lossy()]);
    crate::engine::wait_for(&sandbox.path().join("waiting"));
    crate::engine::signal(&child, "KILL");
    let _ = child.wait_with_output();
    // The step's command outlives upshift; a crash would take it too.
    crate::kill_processes_in(sandbox.path());
    // Meanwhile a newer release is published.
    std::fs::write(sandbox.path().join("versions.txt"), "2.4.6\n2.4.6-p3\n2.4.7\n2.4.7-p1\n2.4.8\n").unwrap();
    let plan = sandbox.run(&["plan", &playbook.to_string_lossy()]);
    assert!(plan.stdout.contains("selected     2.4.8"), "a new plan would pick it: {}", plan.stdout);
    std::fs::write(sandbox.path().join("go"), "").unwrap();
    let resume = sandbox.run(&["resume", "--retry-interrupted"]);
    resume.code(0);
    let log = sandbox.read("log");
    assert_eq!(log, "2.4.6-p3 to 2.4.7-p1: patch p1 stable\nstill 2.4.7-p1\n", "{log}");
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn run_refuses_outside_the_window_unless_told_and_journals_it() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        "format = 1\nname = \"window\"\n[window]\ntimezone = \"Europe/Berlin\"\nallow = [\"sat 22:00-06:00\"]\n[[step]]\nid = \"a\"\nrun = \"echo ran >> log\"\n",
    );
    // Tuesday noon: closed.
    let run = sandbox.run(&["run", "p.toml"]);
    run.code(3);
    assert!(
        run.stderr.contains("outside the maintenance window (Europe/Berlin); the next opens Sat 2026-11-28 22:00 CET"),
        "{}",
        run.stderr
    );
    assert!(!sandbox.path().join("log").exists());
    let run = sandbox.run(&["run", "p.toml", "--ignore-window"]);
    run.code(0);
    assert!(run.stderr.contains("started outside the window with --ignore-window"), "{}", run.stderr);
    let journal = crate::examples::snapshot_tree(&sandbox.path().join(".state/runs"));
    let text = String::from_utf8_lossy(&journal[0].1).into_owned();
    assert!(text.contains("\"window\":\"started outside the window with --ignore-window"), "{text}");
    // Saturday night: open.
    let sandbox = sandbox.env("UPSHIFT_NOW", "2026-11-28T23:30:00+01:00");
    let plan = sandbox.run(&["plan", "p.toml"]);
    assert!(plan.stdout.contains("open now (sat 22:00-06:00)"), "{}", plan.stdout);
}
