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

/// A playbook whose `[version]` table is `version` and whose one step logs.
fn versioned(sandbox: &Sandbox, version: &str) -> std::path::PathBuf {
    sandbox.write(
        "v.toml",
        &format!(
            "format = 1\nname = \"v\"\n[vars]\nline = \"^1.2\"\n[version]\n{version}\n[[step]]\nid = \"go\"\nrun = \"echo {{{{ version.target }}}} >> log\"\n"
        ),
    )
}

fn plan_json(sandbox: &Sandbox, extra: &[&str]) -> (serde_json::Value, crate::Run) {
    let mut args = vec!["plan", "v.toml", "--format", "json"];
    args.extend_from_slice(extra);
    let run = sandbox.run(&args);
    let json = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
    (json, run)
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

#[test]
fn available_reads_plain_text_and_passes_over_what_does_not_parse() {
    let sandbox = Sandbox::new();
    sandbox.write("versions.txt", "6.0\n\n  6.4  \n7.0.post1\n1!7.0\ngarbage\n6.4.1\n");
    versioned(&sandbox, "current = { value = \"6.0.0\" }\navailable = { run = \"cat versions.txt\" }");
    let (json, run) = plan_json(&sandbox, &[]);
    run.code(0);
    let version = &json["version"];
    assert_eq!(version["selected"], "6.4.1", "{json}");
    assert_eq!(strings(&version["candidates"]), ["6.4.1", "6.4"]);
    let passed = strings(&version["passed_over"]).join("\n");
    for bad in ["`7.0.post1`", "`1!7.0`", "`garbage`"] {
        assert!(passed.contains(bad), "{bad} missing from {passed}");
    }
    assert!(passed.contains("is not a semantic version"), "{passed}");
    assert_eq!(json["up_to_date"], false);
}

#[test]
fn pep440_orders_and_matches_like_packaging() {
    let sandbox = Sandbox::new();
    versioned(
        &sandbox,
        "scheme = \"pep440\"\ncurrent = { value = \"7.0\" }\navailable = { list = [\"7.0\", \"7.0.post1\", \"1!1.0\", \"7.1rc1\", \"7.0.1\", \"8.0\", \"garbage\"] }\ntarget = \"~=7.0\"",
    );
    let (json, run) = plan_json(&sandbox, &[]);
    run.code(0);
    // `1!1.0` is newer than every epoch-0 version but outside `~=7.0`; 7.1rc1 is a pre-release.
    assert_eq!(json["version"]["selected"], "7.0.1", "{json}");
    assert_eq!(strings(&json["version"]["candidates"]), ["7.0.1", "7.0.post1"]);
    let passed = strings(&json["version"]["passed_over"]).join("\n");
    assert!(passed.contains("`garbage` is not a valid PEP 440 version"), "{passed}");
    assert!(passed.contains("7.1rc1: a pre-release"), "{passed}");
    let text = sandbox.run(&["plan", "v.toml"]);
    assert!(text.stdout.contains("Version (pep440)"), "{}", text.stdout);
    // Allowed, the pre-release is the newest candidate.
    versioned(
        &sandbox,
        "scheme = \"pep440\"\ncurrent = { value = \"7.0\" }\navailable = { list = [\"7.0.1\", \"7.1rc1\"] }\ntarget = \"~=7.0\"\nallow_prerelease = true",
    );
    assert_eq!(plan_json(&sandbox, &[]).0["version"]["selected"], "7.1rc1");
}

#[test]
fn npm_ranges_and_prereleases_like_node_semver() {
    let sandbox = Sandbox::new();
    let table = |allow: bool| {
        format!(
            "scheme = \"npm\"\ncurrent = {{ value = \"1.2.0\" }}\navailable = {{ json = \"/versions\", run = \"cat registry.json\" }}\ntarget = \"^1.2.0 || >=3.0.0-rc.1 <3.1\"\nallow_prerelease = {allow}"
        )
    };
    sandbox.write(
        "registry.json",
        r#"{"versions": ["1.2.0", "1.3.0-beta.1", "1.2.9", "2.0.0", "3.0.0-rc.2", "v1.2.3", "1.2"]}"#,
    );
    versioned(&sandbox, &table(false));
    let (json, run) = plan_json(&sandbox, &["--allow-major"]);
    run.code(0);
    // 3.0.0-rc.2 is named by `>=3.0.0-rc.1`; 1.3.0-beta.1 is not named by `^1.2.0`.
    assert_eq!(json["version"]["selected"], "3.0.0-rc.2", "{json}");
    assert_eq!(strings(&json["version"]["candidates"]), ["3.0.0-rc.2", "1.2.9", "v1.2.3"]);
    assert!(strings(&json["version"]["passed_over"]).join("\n").contains("`1.2` is not a valid npm version"));
    versioned(&sandbox, &table(true));
    let (json, _) = plan_json(&sandbox, &[]);
    assert_eq!(strings(&json["version"]["candidates"]), ["1.3.0-beta.1", "1.2.9", "v1.2.3"], "{json}");
}

#[test]
fn composer_stability_flags_admit_prereleases() {
    let sandbox = Sandbox::new();
    let table = |target: &str| {
        format!(
            "scheme = \"composer\"\ncurrent = {{ value = \"2.4.7\" }}\navailable = {{ list = [\"2.4.7\", \"2.4.8-beta1\", \"2.4.8-RC1\", \"2.4.7-p1\", \"dev-main\", \"2.4.x-dev\"] }}\ntarget = \"{target}\""
        )
    };
    versioned(&sandbox, &table("~2.4.7"));
    assert_eq!(plan_json(&sandbox, &[]).0["version"]["selected"], "2.4.7-p1");
    versioned(&sandbox, &table("~2.4.7@beta"));
    let (json, _) = plan_json(&sandbox, &[]);
    assert_eq!(json["version"]["selected"], "2.4.8-RC1", "{json}");
    assert_eq!(strings(&json["version"]["candidates"]), ["2.4.8-RC1", "2.4.8-beta1", "2.4.7-p1"]);
    // A branch in the requirement lets dev versions in, as Composer infers it from `dev-main`.
    versioned(&sandbox, &table("^2.4 || dev-main"));
    assert_eq!(plan_json(&sandbox, &[]).0["version"]["selected"], "2.4.x-dev");
}

#[test]
fn up_to_date_is_not_an_error() {
    let sandbox = Sandbox::new();
    versioned(
        &sandbox,
        "current = { value = \"6.4\" }\navailable = { list = [\"6.0\", \"6.4\", \"7.0.0\"] }\ntarget = \"^6\"",
    );
    let (json, run) = plan_json(&sandbox, &[]);
    run.code(0);
    assert_eq!(json["up_to_date"], true, "{json}");
    assert_eq!(json["version"]["up_to_date"], true);
    assert_eq!(json["version"]["selected"], "6.4");
    assert_eq!(json["steps"][0]["status"], "skipped");
    let text = sandbox.run(&["plan", "v.toml"]);
    text.code(0);
    assert!(
        text.stdout
            .contains("selected     6.4 (up to date): no available version that satisfies `^6` is newer than 6.4"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("candidates   none"), "{}", text.stdout);
    assert!(text.stdout.contains("Steps (nothing will run: already up to date)"), "{}", text.stdout);
    let run = sandbox.run(&["run", "v.toml"]);
    run.code(0);
    assert!(run.stderr.contains("Up to date `v` is already at 6.4; nothing to run"), "{}", run.stderr);
    assert!(!sandbox.path().join("log").exists(), "a step ran");
    assert!(
        !sandbox.path().join(".state/runs").exists()
            || crate::examples::snapshot_tree(&sandbox.path().join(".state/runs")).is_empty()
    );
    let events = sandbox.run(&["run", "v.toml", "--format", "json"]);
    events.code(0);
    assert!(events.stdout.contains("\"event\":\"up_to_date\""), "{}", events.stdout);
}

#[test]
fn a_current_version_outside_the_target_with_nothing_to_move_to_is_impossible() {
    let sandbox = Sandbox::new();
    versioned(
        &sandbox,
        "current = { value = \"5.0.0\" }\navailable = { list = [\"5.0.0\", \"6.0.0\"] }\ntarget = \"^7\"",
    );
    let run = sandbox.run(&["plan", "v.toml"]);
    run.code(3);
    assert!(run.stderr.contains("the current 5.0.0 does not satisfy the target"), "{}", run.stderr);
    sandbox.run(&["run", "v.toml"]).code(3);
}

#[test]
fn a_templated_target_is_rendered_with_the_vars() {
    let sandbox = Sandbox::new();
    versioned(
        &sandbox,
        "current = { value = \"1.2.0\" }\navailable = { list = [\"1.2.0\", \"1.3.0\", \"1.9.0\", \"2.0.0\"] }\ntarget = \"{{ line }}\"",
    );
    assert_eq!(plan_json(&sandbox, &[]).0["version"]["selected"], "1.9.0");
    let (json, _) = plan_json(&sandbox, &["--var", "line=~1.2"]);
    assert_eq!(json["version"]["selected"], "1.2.0", "{json}");
    assert_eq!(json["version"]["target_requirement"], "~1.2");
    assert_eq!(json["up_to_date"], true);
    let run = sandbox.run(&["plan", "v.toml", "--var", "line=not a range"]);
    run.code(2);
    assert!(
        run.stderr.contains("error: `target` renders to `not a range`: `not a range` is not a semver requirement"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("v.toml:8:10"), "{}", run.stderr);
    // An undeclared variable in the target is caught by `validate`.
    versioned(&sandbox, "current = { value = \"1.2.0\" }\navailable = { list = [\"1.3.0\"] }\ntarget = \"{{ nope }}\"");
    sandbox.run(&["validate", "v.toml"]).code(2);
}
