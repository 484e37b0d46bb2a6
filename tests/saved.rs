//! Saved plans, from the command line: `plan --out` writes the reviewed plan,
//! `plan --check` says whether it still holds, `run --plan` runs exactly it
//! (or refuses, listing every difference, with nothing changed), once; and a
//! finished run is undone with `rollback --run ID`.

use std::os::unix::fs::PermissionsExt;

use crate::Sandbox;
use crate::engine::{log, signal, spawn, wait_for};

/// An app at 1.0.0 whose available versions are listed in `available`; its
/// upgrade edits `app/composer.json`, and a read-only step decides a guard.
const PLAYBOOK: &str = r#"format = 1
name = "saved"

[vars]
root = "app"

[version]
scheme = "semver"
current = { run = "cat app/VERSION" }
available = { run = "cat available" }
target = "^1"

[[check]]
name = "app exists"
run = "test -d {{ root }}"

[[step]]
id = "state"
read_only = true
run = "cat app/mode"

[[step]]
id = "maint"
when = "steps.state.stdout == 'live'"
run = "echo maint >> log"
rollback = "echo undo-maint >> log"

[[step]]
id = "require"
edit = { path = "{{ root }}/composer.json", json = { "/require/x" = "{{ version.target }}" } }

[[step]]
id = "install"
run = "echo {{ version.target }} > app/VERSION; echo install-{{ version.target }} >> log"
rollback = "echo 1.0.0 > app/VERSION; echo undo-install >> log"

[[finally]]
id = "done"
run = "echo finally >> log"
"#;

const COMPOSER: &str = "{\n    \"require\": {\n        \"x\": \"1.0.0\"\n    }\n}\n";

fn app() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", PLAYBOOK);
    sandbox.write("app/VERSION", "1.0.0\n");
    sandbox.write("app/mode", "live\n");
    sandbox.write("app/composer.json", COMPOSER);
    sandbox.write("available", "1.0.0\n1.1.0\n");
    sandbox
}

fn plan_file(sandbox: &Sandbox) -> serde_json::Value {
    serde_json::from_str(&sandbox.read("plan.json")).expect("the plan file is JSON")
}

#[test]
fn a_saved_plan_is_a_private_documented_file_without_secrets() {
    let canary = "canary-5ec7e7-in-a-plan";
    let sandbox = app().env("TOKEN", canary);
    sandbox.write("templates/auth.j2", "{\"token\": \"{{ secrets.token }}\"}\n");
    sandbox.write(
        "p.toml",
        &PLAYBOOK.replace(
            "[[finally]]",
            "[secrets.token]\nenv = \"TOKEN\"\n\n[[step]]\nid = \"auth\"\ntemplate = { src = \"templates/auth.j2\", dest = \"app/auth.json\" }\n\n[[step]]\nid = \"login\"\nrun = \"echo {{ secrets.token }} > /dev/null\"\n\n[[finally]]",
        ),
    );
    sandbox.write("app/auth.json", &format!("{{\"token\": \"{canary}\"}}\n"));
    let plan = sandbox.run(&["plan", "p.toml", "--out", "plan.json"]);
    plan.code(0);
    assert!(plan.stderr.contains("Saved plan `20261124T120000Z-"), "{}", plan.stderr);
    assert!(
        plan.stderr.contains("valid until 2026-11-25T12:00:00Z (24 hours: the playbook has no maintenance window)"),
        "{}",
        plan.stderr
    );
    let mode = std::fs::metadata(sandbox.path().join("plan.json")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = sandbox.read("plan.json");
    assert!(!text.contains(canary), "the plan file holds the secret");
    let json = plan_file(&sandbox);
    assert_eq!((json["v"].as_u64(), json["kind"].as_str()), (Some(1), Some("upshift-plan")));
    for key in [
        "id",
        "upshift",
        "created_at",
        "expires_at",
        "expiry",
        "cwd",
        "playbook",
        "vars",
        "version",
        "window",
        "checks",
        "steps",
        "finally",
        "files",
        "digest",
    ] {
        assert!(json.get(key).is_some(), "no `{key}` in the plan file");
    }
    assert_eq!(json["playbook"]["file"], "p.toml");
    assert_eq!(json["playbook"]["sources"][0]["kind"], "playbook");
    assert_eq!(json["playbook"]["sources"][1]["kind"], "template source");
    assert_eq!(json["version"]["current"], "1.0.0");
    assert_eq!(json["version"]["selected"], "1.1.0");
    assert_eq!(json["checks"][0]["status"], "passed");
    assert_eq!(json["steps"][0]["output"]["stdout"], "live", "the read-only step's output is known");
    assert_eq!(json["steps"][1]["status"], "will-run", "the guard plan decided");
    assert_eq!(json["steps"][5]["action"]["command"], "echo '<secret:token>' > /dev/null");
    let files = json["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(files[0]["path"], "app/composer.json");
    assert_eq!(files[0]["exists"], true);
    assert_eq!(files[0]["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(files[1]["path"], "app/auth.json");
    assert_eq!((files[1]["exists"].as_bool(), files[1]["secret"].as_bool()), (Some(true), Some(true)));
    assert!(files[1]["sha256"].is_null(), "no digest of a file that will hold a secret");

    // With a window: valid until the next one closes; or as long as asked.
    sandbox.write(
        "p.toml",
        &PLAYBOOK
            .replace("[[check]]", "[window]\ntimezone = \"Europe/Berlin\"\nallow = [\"sat 22:00-06:00\"]\n\n[[check]]"),
    );
    let plan = sandbox.run(&["plan", "p.toml", "--out", "plan.json"]);
    plan.code(0);
    assert_eq!(plan_file(&sandbox)["expires_at"], "2026-11-29T05:00:00Z");
    assert_eq!(plan_file(&sandbox)["expiry"], "the end of the maintenance window `sat 22:00-06:00`, Europe/Berlin");
    sandbox.run(&["plan", "p.toml", "--out", "plan.json", "--expires-in", "2h"]).code(0);
    assert_eq!(plan_file(&sandbox)["expires_at"], "2026-11-24T14:00:00Z");

    // Markdown for the pull request says where the plan went.
    let markdown = sandbox.run(&["plan", "p.toml", "--out", "plan.json", "--format", "markdown"]);
    markdown.code(0);
    assert!(
        markdown.stdout.contains("> Saved as plan `20261124T120000Z-")
            && markdown.stdout.contains("`upshift run --plan plan.json`"),
        "{}",
        markdown.stdout
    );
}

#[test]
fn a_plan_that_is_not_ready_or_has_nothing_to_do_is_not_written() {
    let sandbox = app();
    std::fs::rename(sandbox.path().join("app"), sandbox.path().join("gone")).unwrap();
    sandbox.write("app/VERSION", "1.0.0\n");
    sandbox.write("p.toml", &PLAYBOOK.replace("test -d {{ root }}", "test -f {{ root }}/mode"));
    let plan = sandbox.run(&["plan", "p.toml", "--out", "plan.json"]);
    plan.code(3);
    assert!(plan.stderr.contains("no plan was written to `plan.json`"), "{}", plan.stderr);
    assert!(!sandbox.path().join("plan.json").exists());

    let sandbox = app();
    sandbox.write("available", "1.0.0\n");
    let plan = sandbox.run(&["plan", "p.toml", "--out", "plan.json"]);
    plan.code(0);
    assert!(
        plan.stderr.contains("already up to date: there is nothing to run, so no plan was written"),
        "{}",
        plan.stderr
    );
    assert!(!sandbox.path().join("plan.json").exists());
}

#[test]
fn plan_check_says_whether_the_saved_plan_still_holds() {
    let sandbox = app();
    sandbox.run(&["plan", "p.toml", "--out", "plan.json"]).code(0);
    let check = sandbox.run(&["plan", "--check", "plan.json"]);
    check.code(0);
    assert!(check.stderr.contains("still matches the playbook and the machine"), "{}", check.stderr);

    // A newer version published since is a note, not a difference.
    sandbox.write("available", "1.0.0\n1.1.0\n1.1.1\n2.0.0\n");
    let check = sandbox.run(&["plan", "--check", "plan.json"]);
    check.code(0);
    assert!(
        check.stderr.contains("note: 1.1.1 is available; this plan installs the reviewed 1.1.0"),
        "{}",
        check.stderr
    );

    // Every difference is listed, in words.
    sandbox.write("available", "1.0.0\n1.1.1\n");
    sandbox.write("app/VERSION", "1.0.1\n");
    sandbox.write("app/mode", "maintenance\n");
    sandbox.write("app/composer.json", &COMPOSER.replace("1.0.0", "1.0.5"));
    sandbox.write(
        "p.toml",
        &PLAYBOOK.replace("echo maint >> log", "echo maintenance >> log").replace("finally >> log", "end >> log"),
    );
    let check = sandbox.run(&["plan", "--check", "plan.json"]);
    check.code(3);
    let lines: Vec<&str> = check.stderr.lines().filter_map(|l| l.strip_prefix("  - ")).collect();
    let expected = [
        "playbook `p.toml` changed since the plan: digest ",
        "current version was 1.0.0, is 1.0.1",
        "1.1.0, the version this plan installs, is no longer available",
        "step `maint` is skipped (`steps.state.stdout == 'live'` is false) now; in the plan it would run",
        "playbook changed: step `maint`",
        "playbook changed: finally step `done`",
        "`app/composer.json` changed since the plan: digest ",
    ];
    assert_eq!(lines.len(), expected.len(), "{}", check.stderr);
    for (line, expected) in lines.iter().zip(expected) {
        assert!(line.starts_with(expected), "`{line}` is not `{expected}…`\n{}", check.stderr);
    }
    assert!(check.stderr.contains("error: plan `20261124T120000Z-"), "{}", check.stderr);
    assert!(check.stderr.contains("no longer matches: 7 differences"), "{}", check.stderr);

    // JSON for CI.
    let json = sandbox.run(&["plan", "--check", "plan.json", "--format", "json"]);
    json.code(3);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["current"], false);
    assert_eq!(report["differences"].as_array().map(Vec::len), Some(7));

    // Expired, and a var file's change.
    let sandbox = app();
    sandbox.write("vars.toml", "root = \"app\"\n");
    sandbox.run(&["plan", "p.toml", "--var-file", "vars.toml", "--out", "plan.json"]).code(0);
    sandbox.run(&["plan", "--check", "plan.json"]).code(0);
    std::fs::rename(sandbox.path().join("app"), sandbox.path().join("app2")).unwrap();
    sandbox.write("vars.toml", "root = \"app2\"\n");
    let check = sandbox.run_env(&[("UPSHIFT_NOW", "2026-11-25T12:00:01Z")], &["plan", "--check", "plan.json"]);
    check.code(3);
    for expected in [
        "the plan expired at 2026-11-25T12:00:00Z (24 hours: the playbook has no maintenance window)",
        "var file `vars.toml` changed since the plan",
        "var `root` was \"app\", is \"app2\"",
        "playbook changed: step `require`",
    ] {
        assert!(check.stderr.contains(expected), "no `{expected}`:\n{}", check.stderr);
    }
}

#[test]
fn a_damaged_or_edited_plan_file_is_refused() {
    let sandbox = app();
    sandbox.run(&["plan", "p.toml", "--out", "plan.json"]).code(0);
    let text = sandbox.read("plan.json");
    sandbox.write("plan.json", &text.replace("\"selected\": \"1.1.0\"", "\"selected\": \"1.0.0\""));
    for args in [&["plan", "--check", "plan.json"][..], &["run", "--plan", "plan.json"]] {
        let run = sandbox.run(args);
        run.code(2);
        assert!(
            run.stderr.contains("error: `plan.json` is damaged or was edited: its digest does not match its content"),
            "{}",
            run.stderr
        );
    }
    sandbox.write("plan.json", "{\"v\": 1}");
    let run = sandbox.run(&["run", "--plan", "plan.json"]);
    run.code(2);
    assert!(run.stderr.contains("`plan.json` is not an upshift plan file"), "{}", run.stderr);
    assert_eq!(log(&sandbox), Vec::<String>::new());
}

#[test]
fn run_plan_runs_exactly_the_reviewed_plan_once() {
    let sandbox = app();
    sandbox.run(&["plan", "p.toml", "--out", "plan.json"]).code(0);
    let id = plan_file(&sandbox)["id"].as_str().unwrap().to_owned();
    // Published after the review: noted, not installed.
    sandbox.write("available", "1.0.0\n1.1.0\n1.1.1\n");
    let run = sandbox.run(&["run", "--plan", "plan.json"]);
    run.code(0);
    assert!(run.stderr.contains("Upgrading `saved` to 1.1.0"), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("note running the reviewed plan `{id}`")), "{}", run.stderr);
    assert!(run.stderr.contains("note 1.1.1 is available; this plan installs the reviewed 1.1.0"), "{}", run.stderr);
    assert_eq!(log(&sandbox), ["maint", "install-1.1.0", "finally"]);
    assert!(sandbox.read("app/composer.json").contains("\"x\": \"1.1.0\""));
    let journal = crate::examples::snapshot_tree(&sandbox.path().join(".state/runs"))
        .into_iter()
        .find(|(p, _)| p.extension().is_some_and(|e| e == "jsonl"))
        .map(|(_, c)| String::from_utf8(c).unwrap())
        .unwrap();
    assert!(journal.contains(&format!("\"plan\":{{\"id\":\"{id}\"")), "the header names the plan: {journal}");
    let run_id = journal.split("\"run_id\":\"").nth(1).unwrap().split('"').next().unwrap().to_owned();

    // Used once.
    let again = sandbox.run(&["run", "--plan", "plan.json"]);
    again.code(5);
    assert!(
        again.stderr.contains(&format!("error: plan `{id}` (`plan.json`) was applied already, by run `{run_id}`")),
        "{}",
        again.stderr
    );
    assert_eq!(log(&sandbox).len(), 3, "nothing ran again");
}

#[test]
fn run_plan_refuses_a_stale_plan_with_every_difference_and_changes_nothing() {
    let sandbox = app();
    sandbox.run(&["plan", "p.toml", "--out", "plan.json"]).code(0);
    sandbox.write("app/composer.json", &COMPOSER.replace("}\n}", "},\n    \"extra\": 1\n}"));
    let changed = sandbox.read("app/composer.json");
    sandbox.write("app/VERSION", "1.0.1\n");
    let run = sandbox.run(&["run", "--plan", "plan.json"]);
    run.code(3);
    assert!(run.stderr.contains("no longer matches: 2 differences"), "{}", run.stderr);
    assert!(run.stderr.contains("  - current version was 1.0.0, is 1.0.1\n"), "{}", run.stderr);
    assert!(run.stderr.contains("  - `app/composer.json` changed since the plan: digest "), "{}", run.stderr);
    assert!(run.stderr.contains("help: nothing was changed"), "{}", run.stderr);
    assert_eq!(log(&sandbox), Vec::<String>::new(), "nothing ran");
    assert_eq!(sandbox.read("app/composer.json"), changed);
    assert!(!sandbox.path().join(".state/runs").exists(), "no journal was written");

    // Made elsewhere: relative paths would name other files.
    let sandbox = app();
    sandbox.run(&["plan", "p.toml", "--out", "plan.json"]).code(0);
    std::fs::create_dir(sandbox.path().join("sub")).unwrap();
    let run = sandbox.run_in(&sandbox.path().join("sub"), &["run", "--plan", "../plan.json"]);
    run.code(3);
    assert!(run.stderr.contains("upshift runs in `"), "{}", run.stderr);
    assert!(run.stderr.contains("relative paths would name other files"), "{}", run.stderr);
}

#[test]
fn each_step_runs_only_as_the_plan_rendered_it() {
    // `flip` changes what the read-only `state` says between the plan and the
    // run: `use` would run another command than the one reviewed.
    let sandbox = Sandbox::new();
    sandbox.write("mode", "live\n");
    sandbox.write(
        "p.toml",
        r#"format = 1
name = "drift"

[[step]]
id = "flip"
run = "echo flip >> log; echo maintenance > mode"
rollback = "echo undo-flip >> log; echo live > mode"

[[step]]
id = "state"
read_only = true
run = "cat mode"

[[step]]
id = "later"
when = "steps.flip.exit_code == 0"
run = "echo later >> log"

[[step]]
id = "use"
run = "echo use-{{ steps.state.stdout }} >> log"
"#,
    );
    let plan = sandbox.run(&["plan", "p.toml", "--out", "plan.json"]);
    plan.code(0);
    assert!(plan.stdout.contains("run       echo use-live >> log"), "{}", plan.stdout);
    let json = plan_file(&sandbox);
    assert_eq!(json["steps"][2]["status"], "decided-at-run-time");
    let run = sandbox.run(&["run", "--plan", "plan.json"]);
    run.code(1);
    assert!(
        run.stderr.contains("Failed use: `use` renders differently than in the reviewed plan (fingerprint "),
        "{}",
        run.stderr
    );
    // `later`, decided at run time, ran as the plan knew it; `use` never ran.
    assert_eq!(log(&sandbox), ["flip", "later", "undo-flip"]);
}

#[test]
fn a_crashed_run_of_a_plan_resumes_held_to_the_plan() {
    const SLOW: &str = "echo maint >> log; test -f fast || { touch started; sleep 30; }";
    let sandbox = app();
    sandbox.write("p.toml", &PLAYBOOK.replace("echo maint >> log", SLOW));
    // `spawn` runs on the real clock, past the sandbox's fixed one.
    sandbox.run(&["plan", "p.toml", "--out", "plan.json", "--expires-in", "100years"]).code(0);
    let child = spawn(&sandbox, &["run", "--plan", "plan.json"]);
    wait_for(&sandbox.path().join("started"));
    signal(&child, "KILL");
    let _ = child.wait_with_output();
    crate::kill_processes_in(sandbox.path());
    let again = sandbox.run(&["run", "--plan", "plan.json"]);
    again.code(5);
    assert!(again.stderr.contains("was applied already, by run"), "{}", again.stderr);
    sandbox.write("fast", "");
    let resume = sandbox.run(&["resume", "--retry-interrupted"]);
    resume.code(0);
    assert_eq!(log(&sandbox), ["maint", "maint", "install-1.1.0", "finally"]);

    // A step changed after the crash: resume runs nothing the plan did not show.
    let sandbox = app();
    sandbox.write("p.toml", &PLAYBOOK.replace("echo maint >> log", SLOW));
    // `spawn` runs on the real clock, past the sandbox's fixed one.
    sandbox.run(&["plan", "p.toml", "--out", "plan.json", "--expires-in", "100years"]).code(0);
    let child = spawn(&sandbox, &["run", "--plan", "plan.json"]);
    wait_for(&sandbox.path().join("started"));
    signal(&child, "KILL");
    let _ = child.wait_with_output();
    crate::kill_processes_in(sandbox.path());
    sandbox.write("fast", "");
    sandbox.write(
        "p.toml",
        &PLAYBOOK
            .replace("echo maint >> log", SLOW)
            .replace("install-{{ version.target }}", "installed-{{ version.target }}"),
    );
    let resume = sandbox.run(&["resume", "--retry-interrupted"]);
    resume.code(1);
    assert!(resume.stderr.contains("`install` renders differently than in the reviewed plan"), "{}", resume.stderr);
    assert_eq!(log(&sandbox), ["maint", "maint", "undo-maint", "finally"]);
}

/// The journal file of the only run.
/// The newest run's id (`status` lists the newest first).
fn run_id(sandbox: &Sandbox) -> String {
    let status = sandbox.run(&["status", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    json["runs"][0]["run_id"].as_str().unwrap().to_owned()
}

#[test]
fn a_finished_run_is_undone_after_showing_what_and_asking() {
    let sandbox = app();
    sandbox.run(&["run", "p.toml"]).code(0);
    assert_eq!(sandbox.read("app/VERSION"), "1.1.0\n");
    let id = run_id(&sandbox);

    // No terminal, no `--yes`: it shows what it would do and changes nothing.
    let refused = sandbox.run(&["rollback"]);
    refused.code(2);
    assert!(
        refused.stderr.contains(&format!(
            "Undoing run `{id}` (started "
        )) && refused.stderr.contains(", 1.0.0 → 1.1.0) undoes its completed steps, newest first:\n  - `install`: echo 1.0.0 > app/VERSION; echo undo-install >> log\n  - `require`: restore `app/composer.json` from its snapshot\n  - `maint`: echo undo-maint >> log\n  - `state`: nothing to undo (it has no rollback)\nthen the `finally` steps run again: `done`\n"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("needs a person's yes, and there is no terminal to ask on"), "{}", refused.stderr);
    assert_eq!(log(&sandbox), ["maint", "install-1.1.0", "finally"]);

    let undo = sandbox.run(&["rollback", "--run", &id, "--yes"]);
    undo.code(0);
    assert_eq!(log(&sandbox), ["maint", "install-1.1.0", "finally", "undo-install", "undo-maint", "finally"]);
    assert_eq!(sandbox.read("app/composer.json"), COMPOSER, "restored from its snapshot");
    assert_eq!(sandbox.read("app/VERSION"), "1.0.0\n");
    let status = sandbox.run(&["status"]);
    assert!(status.stdout.contains("  state    undone\n"), "{}", status.stdout);
    assert!(status.stdout.contains("ok          install (rollback)"), "{}", status.stdout);

    // Undone once.
    let again = sandbox.run(&["rollback", "--yes"]);
    again.code(2);
    assert!(again.stderr.contains(&format!("the latest run `{id}` was undone already")), "{}", again.stderr);
    let again = sandbox.run(&["rollback", "--run", &id, "--yes"]);
    again.code(2);
    assert!(again.stderr.contains(&format!("run `{id}` was undone already")), "{}", again.stderr);
    // A new run may start.
    sandbox.run(&["run", "p.toml"]).code(0);
    let bad = sandbox.run(&["rollback", "--run", "../../elsewhere", "--yes"]);
    bad.code(2);
    assert!(bad.stderr.contains("error: `../../elsewhere` is not a run id"), "{}", bad.stderr);
}

#[test]
fn rollback_run_names_an_unfinished_run_too() {
    let sandbox = app();
    sandbox.write(
        "p.toml",
        &PLAYBOOK.replace("install-{{ version.target }} >> log", "install >> log; touch started; sleep 30"),
    );
    let child = spawn(&sandbox, &["run", "p.toml"]);
    wait_for(&sandbox.path().join("started"));
    signal(&child, "KILL");
    let _ = child.wait_with_output();
    crate::kill_processes_in(sandbox.path());
    let id = run_id(&sandbox);
    // Interrupted, not finished: `--run` rolls it back as `rollback` would (exit 0), no question asked.
    let rollback = sandbox.run(&["rollback", "--run", &id]);
    rollback.code(0);
    assert_eq!(log(&sandbox), ["maint", "install", "undo-install", "undo-maint", "finally"]);
    assert_eq!(sandbox.read("app/composer.json"), COMPOSER);
}

#[test]
fn an_undo_refuses_when_a_snapshot_is_gone_or_a_later_run_changed_the_file() {
    let sandbox = app();
    sandbox.run(&["run", "p.toml"]).code(0);
    let first = run_id(&sandbox);
    // A later run (here: up to 1.2.0) edits composer.json again.
    sandbox.write("available", "1.0.0\n1.1.0\n1.2.0\n");
    sandbox.run(&["run", "p.toml"]).code(0);
    let second = run_id(&sandbox);
    let undo = sandbox.run(&["rollback", "--run", &first, "--yes"]);
    undo.code(3);
    assert!(undo.stderr.contains(&format!("error: run `{first}` cannot be undone")), "{}", undo.stderr);
    assert!(
        undo.stderr.contains(&format!(
            "  - `app/composer.json` (step `require`) was changed again by the later run `{second}` (step `require`): undo that run first"
        )),
        "{}",
        undo.stderr
    );
    assert!(undo.stderr.contains("help: nothing was changed"), "{}", undo.stderr);
    // The later run undone, the earlier one may go.
    sandbox.run(&["rollback", "--run", &second, "--yes"]).code(0);
    assert!(sandbox.read("app/composer.json").contains("\"x\": \"1.1.0\""));
    sandbox.run(&["rollback", "--run", &first, "--yes"]).code(0);
    assert_eq!(sandbox.read("app/composer.json"), COMPOSER);

    // A snapshot removed by hand.
    let sandbox = app();
    sandbox.run(&["run", "p.toml"]).code(0);
    let id = run_id(&sandbox);
    let files = std::fs::read_dir(sandbox.path().join(".state/runs/saved@default")).unwrap();
    let dir = files.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|e| e == "files")).unwrap();
    std::fs::remove_file(dir.join("require.content")).unwrap();
    let undo = sandbox.run(&["rollback", "--yes"]);
    undo.code(3);
    assert!(
        undo.stderr.contains(&format!("error: run `{id}` cannot be undone\n  - `require`: the snapshot of `"))
            && undo.stderr.contains("composer.json` is gone"),
        "{}",
        undo.stderr
    );
    assert_eq!(log(&sandbox), ["maint", "install-1.1.0", "finally"], "nothing was undone");

    // A failed run was rolled back already: nothing to undo.
    let sandbox = app();
    sandbox.write("p.toml", &PLAYBOOK.replace("install-{{ version.target }} >> log", "install >> log; exit 1"));
    sandbox.run(&["run", "p.toml"]).code(1);
    let id = run_id(&sandbox);
    let undo = sandbox.run(&["rollback", "--run", &id, "--yes"]);
    undo.code(2);
    assert!(undo.stderr.contains("failed and was rolled back: there is nothing to undo"), "{}", undo.stderr);
}

#[test]
fn an_interrupted_undo_is_finished_by_resume() {
    let sandbox = app();
    sandbox.write(
        "p.toml",
        &PLAYBOOK.replace("rollback = \"echo 1.0.0 > app/VERSION; echo undo-install >> log\"", "rollback = \"echo 1.0.0 > app/VERSION; echo undo-install >> log; touch undoing; sleep 30\"\nidempotent = true"),
    );
    sandbox.run(&["run", "p.toml"]).code(0);
    let child = spawn(&sandbox, &["rollback", "--yes"]);
    wait_for(&sandbox.path().join("undoing"));
    signal(&child, "KILL");
    let _ = child.wait_with_output();
    crate::kill_processes_in(sandbox.path());
    let status = sandbox.run(&["status"]);
    assert!(status.stdout.contains("unfinished: stopped during `install` (rollback)"), "{}", status.stdout);
    let run = sandbox.run(&["run", "p.toml"]);
    run.code(5);
    sandbox.write("p.toml", &sandbox.read("p.toml").replace("; touch undoing; sleep 30", ""));
    let resume = sandbox.run(&["resume"]);
    resume.code(0);
    assert!(resume.stderr.contains("this run was being undone: finishing the undo"), "{}", resume.stderr);
    assert_eq!(
        log(&sandbox),
        ["maint", "install-1.1.0", "finally", "undo-install", "undo-install", "undo-maint", "finally"]
    );
    assert_eq!(sandbox.read("app/composer.json"), COMPOSER);
}

/// Runs `upshift ARGS` on a terminal (script(1)) in the sandbox, typing `input`.
fn on_a_terminal(sandbox: &Sandbox, args: &str, input: &str) -> (Option<i32>, String) {
    use std::io::Write;
    let bin = assert_cmd::cargo::cargo_bin("upshift");
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &format!("{} {args}", bin.display()), "/dev/null"])
        .current_dir(sandbox.path())
        .env("UPSHIFT_STATE_DIR", sandbox.path().join(".state"))
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.as_mut().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn on_a_terminal_an_undo_asks_first() {
    let sandbox = app();
    sandbox.run(&["run", "p.toml"]).code(0);
    let id = run_id(&sandbox);
    let (code, text) = on_a_terminal(&sandbox, "rollback", "n\n");
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains(&format!("Undo run `{id}`? [y/N]")), "{text}");
    assert!(text.contains("was not undone: not confirmed"), "{text}");
    assert_eq!(log(&sandbox), ["maint", "install-1.1.0", "finally"]);
    let (code, text) = on_a_terminal(&sandbox, "rollback", "y\n");
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(log(&sandbox), ["maint", "install-1.1.0", "finally", "undo-install", "undo-maint", "finally"]);
}
