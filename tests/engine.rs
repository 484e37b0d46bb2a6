//! The engine under failure, crashes and concurrency: real processes in temp
//! sandboxes. Steps append to `log` in the sandbox; tests assert the order of
//! what ran, what rollback undid, what resume re-ran, what a kill left.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

use crate::Sandbox;

pub(crate) fn log(sandbox: &Sandbox) -> Vec<String> {
    std::fs::read_to_string(sandbox.path().join("log")).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// A step that appends its id to `log`, with a rollback that appends `undo ID`.
pub(crate) fn step(id: &str, extra: &str) -> String {
    format!("[[step]]\nid = \"{id}\"\nrun = \"echo {id} >> log\"\nrollback = \"echo undo-{id} >> log\"\n{extra}\n")
}

#[test]
fn a_failure_rolls_back_newest_first_then_runs_finally() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        &format!(
            "format = 1\nname = \"rollback\"\n{}{}{}[[step]]\nid = \"nothing-to-undo\"\nrun = \"echo plain >> log\"\n{}[[step]]\nid = \"never\"\nrun = \"echo never >> log\"\n[[finally]]\nid = \"cleanup\"\nrun = \"echo finally >> log\"\n",
            step("one", ""),
            step("two", ""),
            step("skipped", "when = \"false\""),
            step("boom", "run = \"echo boom >> log; echo 'disk full' >&2; exit 7\"").replacen("run = \"echo boom >> log\"\n", "", 1),
        ),
    );
    let run = sandbox.run(&["run", &playbook.to_string_lossy()]);
    run.code(1);
    assert_eq!(log(&sandbox), ["one", "two", "plain", "boom", "undo-two", "undo-one", "finally"]);
    assert!(run.stderr.contains("Failed boom: exit code 7: disk full"), "{}", run.stderr);
    assert!(run.stderr.contains("Rolled back two"), "{}", run.stderr);
    assert!(run.stderr.contains("Done rolled-back"), "{}", run.stderr);
    let status = sandbox.run(&["status"]);
    status.code(0);
    assert!(status.stdout.contains("state    rolled-back"), "{}", status.stdout);
    assert!(status.stdout.contains("failed      boom: exit code 7: disk full"), "{}", status.stdout);
    assert!(status.stdout.contains("ok          two (rollback)"), "{}", status.stdout);
    // A finished run does not block the next one.
    sandbox.write("p.toml", &std::fs::read_to_string(&playbook).unwrap().replace("exit 7", "exit 0"));
    sandbox.run(&["run", &playbook.to_string_lossy()]).code(0);
}

#[test]
fn a_failing_rollback_exits_4_and_lists_what_is_left() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        "format = 1\nname = \"left\"\n\
         [[step]]\nid = \"a\"\nrun = \"echo a >> log\"\nrollback = \"echo undo-a >> log\"\n\
         [[step]]\nid = \"b\"\nrun = \"echo b >> log\"\nrollback = \"echo cannot >&2; exit 3\"\n\
         [[step]]\nid = \"c\"\nrun = \"exit 1\"\n",
    );
    let run = sandbox.run(&["run", &playbook.to_string_lossy()]);
    run.code(4);
    // The failing rollback does not stop the others.
    assert_eq!(log(&sandbox), ["a", "b", "undo-a"]);
    assert!(
        run.stderr.contains("left `b`: rollback failed (exit code 3: cannot); undo by hand: echo cannot >&2; exit 3"),
        "{}",
        run.stderr
    );
    let status = sandbox.run(&["status", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["runs"][0]["state"], "rollback-incomplete");
    assert_eq!(json["runs"][0]["unfinished"], true);
    // It blocks a new run until an operator finishes the rollback.
    let again = sandbox.run(&["run", &playbook.to_string_lossy()]);
    again.code(5);
    assert!(again.stderr.contains("is unfinished (rollback-incomplete)"), "{}", again.stderr);
    // There is nothing to resume: what is left must be undone (exit 4, as for the run).
    let resume = sandbox.run(&["resume"]);
    resume.code(4);
    assert!(resume.stderr.contains("its rollback is incomplete: there is nothing to resume"), "{}", resume.stderr);
    assert!(resume.stderr.contains("`upshift rollback` retries what is left"), "{}", resume.stderr);
    sandbox.write(
        "p.toml",
        &std::fs::read_to_string(&playbook).unwrap().replace("echo cannot >&2; exit 3", "echo undo-b >> log"),
    );
    // The rollback that was asked for completed: it succeeded.
    let rollback = sandbox.run(&["rollback"]);
    rollback.code(0);
    assert_eq!(log(&sandbox), ["a", "b", "undo-a", "undo-b"], "only what was left is undone");
}

#[test]
fn guards_read_registered_output_and_retries_retry() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "guards"

[[step]]
id = "probe"
read_only = true
run = "echo on"

[[step]]
id = "when-on"
when = "steps.probe.stdout == 'on'"
run = "echo when-on {{ steps.probe.stdout }} >> log"

[[step]]
id = "when-off"
when = "steps.probe.stdout == 'off'"
run = "echo when-off >> log"

[[step]]
id = "flaky"
run = "n=$(cat tries 2>/dev/null || echo 0); n=$((n+1)); echo $n > tries; test $n -ge 3"
retries = 2
retry_delay = "100ms"

[[step]]
id = "after"
when = "not steps['when-off'].skipped == false and steps.flaky.exit_code == 0"
run = "echo after >> log"
"#,
    );
    let run = sandbox.run(&["run", &playbook.to_string_lossy()]);
    run.code(0);
    assert_eq!(log(&sandbox), ["when-on on", "after"]);
    assert_eq!(sandbox.read("tries").trim(), "3");
    assert!(run.stderr.contains("Skipped when-off: `steps.probe.stdout == 'off'` is false"), "{}", run.stderr);
    assert_eq!(run.stderr.matches("Retrying flaky").count(), 2, "{}", run.stderr);
}

#[test]
fn a_timeout_kills_grandchildren_and_fails_the_step() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        "format = 1\nname = \"timeout\"\n[[step]]\nid = \"slow\"\nrun = \"(sleep 2; touch survived) & sleep 30\"\ntimeout = \"300ms\"\n",
    );
    let started = Instant::now();
    let run = sandbox.run(&["run", &playbook.to_string_lossy()]);
    run.code(1);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(run.stderr.contains("Failed slow: timed out after"), "{}", run.stderr);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!sandbox.path().join("survived").exists(), "a grandchild outlived the timeout");
}

/// Starts `upshift` in the background (no terminal).
pub(crate) fn spawn(sandbox: &Sandbox, args: &[&str]) -> Child {
    let mut command = std::process::Command::cargo_bin("upshift").unwrap();
    command
        .args(args)
        .current_dir(sandbox.path())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("NO_COLOR", "1")
        .env("UPSHIFT_STATE_DIR", sandbox.path().join(".state"))
        .env("UPSHIFT_GRACE_SECONDS", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.spawn().unwrap()
}

pub(crate) fn wait_for(path: &Path) {
    // Generous: a loaded machine is slow to start things; a hang still fails.
    let until = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < until, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn signal(child: &Child, signal: &str) {
    let status = std::process::Command::new("kill").args(["-s", signal, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[test]
fn a_second_run_exits_5_and_names_the_holder() {
    let sandbox = Sandbox::new();
    let playbook = sandbox
        .write("p.toml", "format = 1\nname = \"slow\"\n[[step]]\nid = \"wait\"\nrun = \"touch started; sleep 3\"\n");
    let first = spawn(&sandbox, &["run", &playbook.to_string_lossy()]);
    wait_for(&sandbox.path().join("started"));
    let second = sandbox.run(&["run", &playbook.to_string_lossy()]);
    second.code(5);
    assert!(
        second.stderr.contains(&format!("another upshift holds the lock: pid {}", first.id())),
        "{}",
        second.stderr
    );
    assert!(second.stderr.contains("`run` since"), "{}", second.stderr);
    let output = first.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn sigint_stops_the_step_journals_interrupted_and_exits_130() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        &format!(
            "format = 1\nname = \"sig\"\n{}[[step]]\nid = \"long\"\nrun = \"touch started; sleep 30\"\nidempotent = true\n{}",
            step("first", ""),
            step("last", "")
        ),
    );
    let child = spawn(&sandbox, &["run", &playbook.to_string_lossy()]);
    wait_for(&sandbox.path().join("started"));
    signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("interrupted by SIGINT during `long`; nothing was rolled back"), "{stderr}");
    assert_eq!(log(&sandbox), ["first"], "no rollback after a signal");
    let status = sandbox.run(&["status"]);
    assert!(status.stdout.contains("unfinished: stopped during `long`"), "{}", status.stdout);
    // The step is idempotent, so resume runs it again.
    std::fs::write(&playbook, std::fs::read_to_string(&playbook).unwrap().replace("sleep 30", "true")).unwrap();
    let resume = sandbox.run(&["resume", "--accept-changes"]);
    resume.code(0);
    assert!(resume.stderr.contains("`long` was interrupted; running it again (it is idempotent)"), "{}", resume.stderr);
    assert_eq!(log(&sandbox), ["first", "last"]);
}

#[test]
fn a_pause_needs_approval_and_sigterm_interrupts_it() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        &format!(
            "format = 1\nname = \"pause\"\n{}[[step]]\nid = \"ticket\"\npause = \"Open the B2B support ticket\"\n{}",
            step("before", ""),
            step("after", "")
        ),
    );
    // No terminal and no approval: refused before anything runs, naming the pause.
    let run = sandbox.run(&["run", &playbook.to_string_lossy()]);
    run.code(2);
    assert!(
        run.stderr.contains(
            "error: this run reaches a `pause` step that needs a person's yes, and there is no terminal to ask on\n  - `ticket`\n  = help: nothing was changed; approve now with `--approve ticket`"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(log(&sandbox), Vec::<String>::new(), "nothing ran");
    assert!(!sandbox.path().join(".state/runs").exists(), "no journal");
    let run = sandbox.run(&["run", &playbook.to_string_lossy(), "--approve", "tickte"]);
    run.code(2);
    assert!(run.stderr.contains("error: `--approve tickte`: no `pause` step has this id"), "{}", run.stderr);
    assert!(run.stderr.contains("did you mean `ticket`?"), "{}", run.stderr);
    let run = sandbox.run(&["run", &playbook.to_string_lossy(), "--approve", "ticket"]);
    run.code(0);
    assert_eq!(log(&sandbox), ["before", "after"]);

    // On a terminal (script(1) gives one), a signal while waiting interrupts the run.
    std::fs::remove_file(sandbox.path().join("log")).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("upshift");
    let command = format!("{} run {}", bin.display(), playbook.display());
    let child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .current_dir(sandbox.path())
        .env("UPSHIFT_STATE_DIR", sandbox.path().join(".state"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lock = sandbox.path().join(".state/lock");
    let until = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        let holder: Option<serde_json::Value> =
            std::fs::read_to_string(&lock).ok().and_then(|text| serde_json::from_str(&text).ok());
        if let Some(pid) = holder.and_then(|h| h["pid"].as_u64())
            && log(&sandbox) == ["before"]
        {
            break pid;
        }
        assert!(Instant::now() < until, "the run never reached the pause");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(300));
    std::process::Command::new("kill").args(["-s", "TERM", &pid.to_string()]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Continue with `ticket`? [y/N]"), "{text}");
    assert!(text.contains("interrupted by SIGTERM during `ticket`"), "{text}");
    assert_eq!(output.status.code(), Some(130), "script passes upshift's exit code on (-e)");
    assert_eq!(log(&sandbox), ["before"], "nothing ran after the pause, nothing was rolled back");
    let resume = sandbox.run(&["resume", "--approve", "ticket"]);
    resume.code(0);
    assert_eq!(log(&sandbox), ["before", "after"]);
}

#[test]
fn pauses_ahead_are_asked_for_up_front_by_run_resume_and_run_plan() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        &format!(
            "format = 1\nname = \"pauses\"\n{}[[step]]\nid = \"gate\"\nrun = \"echo gate >> log; test -f fast || {{ touch started; sleep 30; }}\"\nidempotent = true\n[[step]]\nid = \"maybe\"\nwhen = \"steps.gate.exit_code == 0\"\npause = \"Check the shop\"\n[[step]]\nid = \"never\"\nwhen = \"false\"\npause = \"Not asked\"\n[[finally]]\nid = \"bye\"\npause = \"Say goodbye\"\n",
            step("one", "")
        ),
    );
    let path = playbook.to_string_lossy().into_owned();
    // One decided at run time (it may run) and one in `finally`; a skipped one is not asked for.
    let run = sandbox.run(&["run", &path, "--approve", "bye"]);
    run.code(2);
    assert!(run.stderr.contains("  - `maybe` (may run: its guard is decided at run time)\n"), "{}", run.stderr);
    assert!(!run.stderr.contains("`bye`") && !run.stderr.contains("`never`"), "{}", run.stderr);
    assert_eq!(log(&sandbox), Vec::<String>::new());

    // A saved plan is held to the same rule.
    sandbox.run(&["plan", &path, "--out", "plan.json", "--expires-in", "100years"]).code(0);
    let run = sandbox.run(&["run", "--plan", "plan.json"]);
    run.code(2);
    assert!(run.stderr.contains("- `maybe` (may run"), "{}", run.stderr);
    assert!(run.stderr.contains("- `bye`"), "{}", run.stderr);

    // Crashed before the pause: `resume` asks for it up front too.
    let child = spawn(&sandbox, &["run", "--plan", "plan.json", "--yes"]);
    wait_for(&sandbox.path().join("started"));
    signal(&child, "KILL");
    let _ = child.wait_with_output();
    crate::kill_processes_in(sandbox.path());
    sandbox.write("fast", "");
    let resume = sandbox.run(&["resume"]);
    resume.code(2);
    assert!(resume.stderr.contains("- `maybe` (may run"), "{}", resume.stderr);
    assert_eq!(log(&sandbox), ["one", "gate"], "nothing ran again");
    let resume = sandbox.run(&["resume", "--approve", "maybe", "--approve", "bye"]);
    resume.code(0);
    assert_eq!(log(&sandbox), ["one", "gate", "gate"]);
}

#[test]
fn on_a_terminal_the_pause_question_stays_visible() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        "format = 1\nname = \"ask\"\n[[step]]\nid = \"ticket\"\npause = \"Open the B2B support ticket\"\n[[step]]\nid = \"after\"\nrun = \"echo after >> log\"\n",
    );
    // script(1) gives a terminal: the reporter draws spinners on it.
    let bin = assert_cmd::cargo::cargo_bin("upshift");
    let command = format!("{} run {}", bin.display(), playbook.display());
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .current_dir(sandbox.path())
        .env("UPSHIFT_STATE_DIR", sandbox.path().join(".state"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        })
    };
    let prompt = "Continue with `ticket`? [y/N] ";
    let until = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&seen.lock().unwrap()).contains(prompt) {
        assert!(Instant::now() < until, "the question never showed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Long enough for a spinner to tick several times over the question.
    std::thread::sleep(Duration::from_millis(800));
    let waited = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    {
        use std::io::Write;
        child.stdin.as_mut().unwrap().write_all(b"y\n").unwrap();
    }
    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert_eq!(status.code(), Some(0));
    let after_prompt = waited.split(prompt).nth(1).unwrap();
    assert_eq!(after_prompt, "", "something drew over the question: {waited:?}");
    assert!(waited.contains("Waiting ticket: a person's yes"), "{waited:?}");
    assert!(waited.contains("Open the B2B support ticket"), "{waited:?}");
    assert_eq!(log(&sandbox), ["after"]);
}

#[test]
fn resume_refuses_a_changed_playbook_unless_accepted() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        &format!(
            "format = 1\nname = \"changed\"\n[vars]\nflag = \"stop\"\n{}[[step]]\nid = \"gate\"\nrun = \"test ! -f stop\"\n{}",
            step("one", ""),
            step("two", "")
        ),
    );
    // Interrupt the run the hard way: SIGKILL while `gate` runs.
    std::fs::write(sandbox.path().join("stop"), "").unwrap();
    let text = std::fs::read_to_string(&playbook).unwrap().replace("test ! -f stop", "touch at-gate; sleep 30");
    std::fs::write(&playbook, &text).unwrap();
    let child = spawn(&sandbox, &["run", &playbook.to_string_lossy()]);
    wait_for(&sandbox.path().join("at-gate"));
    signal(&child, "KILL");
    let _ = child.wait_with_output();
    crate::kill_processes_in(sandbox.path());
    // Change a completed step.
    std::fs::write(
        &playbook,
        text.replace("echo one >> log", "echo ONE >> log").replace("touch at-gate; sleep 30", "true"),
    )
    .unwrap();
    let resume = sandbox.run(&["resume"]);
    resume.code(2);
    assert!(resume.stderr.contains("the playbook changed since run"), "{}", resume.stderr);
    assert!(resume.stderr.contains("- `one` changed since it ran"), "{}", resume.stderr);
    assert_eq!(log(&sandbox), ["one"], "nothing ran");
    // `gate` is not idempotent: resume asks what to do with it.
    let resume = sandbox.run(&["resume", "--accept-changes"]);
    resume.code(2);
    assert!(resume.stderr.contains("step `gate` was interrupted and is not idempotent"), "{}", resume.stderr);
    let resume = sandbox.run(&["resume", "--accept-changes", "--retry-interrupted"]);
    resume.code(0);
    assert_eq!(log(&sandbox), ["one", "two"], "`one` did not run again");
}

const CANARY: &str = "canary-3c0ffee-not-for-your-eyes";

#[test]
fn a_secret_appears_in_no_output_and_nowhere_in_the_state_dir() {
    let sandbox = Sandbox::new().env("API_TOKEN", CANARY);
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "canary"

[secrets.token]
env = "API_TOKEN"

[[step]]
id = "echo"
run = "echo token={{ secrets.token }}; echo $TOKEN >&2; printf '%s' {{ secrets.token }} > secret.txt"
env = { TOKEN = "{{ secrets.token }}" }

[[step]]
id = "fail"
run = "echo failing with {{ secrets.token }} >&2; exit 1"
rollback = "echo rollback {{ secrets.token }}"
"#,
    );
    for format in ["text", "json"] {
        let run = sandbox.run(&["run", &playbook.to_string_lossy(), "--format", format, "-v"]);
        run.code(1);
        assert!(
            !run.stdout.contains(CANARY) && !run.stderr.contains(CANARY),
            "{format}:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        assert!(run.stderr.contains("********") || run.stdout.contains("********"), "the masked line is shown");
        let status = sandbox.run(&["status", "--format", format]);
        assert!(!status.stdout.contains(CANARY));
    }
    // The command itself got the real value.
    assert_eq!(sandbox.read("secret.txt"), CANARY);
    for (path, content) in crate::examples::snapshot_tree(&sandbox.path().join(".state")) {
        assert!(!String::from_utf8_lossy(&content).contains(CANARY), "{} holds the secret", path.display());
    }
    // A missing secret stops `run` before anything changes.
    let sandbox = Sandbox::new();
    let playbook = sandbox.write("p.toml", &std::fs::read_to_string(&playbook).unwrap());
    let run = sandbox.run(&["run", &playbook.to_string_lossy()]);
    run.code(3);
    assert!(
        run.stderr.contains("required secrets are missing") && run.stderr.contains("`API_TOKEN` is not set"),
        "{}",
        run.stderr
    );
    assert!(!sandbox.path().join("secret.txt").exists());
}

#[test]
fn an_injection_payload_stays_literal_when_run() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        "format = 1\nname = \"inject\"\n[vars]\nx = \"safe\"\n[[step]]\nid = \"echo\"\nrun = \"printf '%s' {{ x }} > out.txt\"\n",
    );
    let payload = "x'; touch pwned; echo '";
    sandbox.run(&["run", &playbook.to_string_lossy(), "--var", &format!("x={payload}")]).code(0);
    assert_eq!(sandbox.read("out.txt"), payload);
    assert!(!sandbox.path().join("pwned").exists());
}

#[test]
fn edits_and_templates_are_restored_on_rollback() {
    let sandbox = Sandbox::new();
    sandbox.write("app/composer.json", "{\n    \"require\": {\n        \"acme/store\": \"1.0.0\"\n    }\n}\n");
    sandbox.write("templates/motd.j2", "Upgrading to {{ release }}\n");
    std::fs::set_permissions(
        sandbox.path().join("app/composer.json"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "files"
[vars]
release = "1.1.0"

[[step]]
id = "require"
edit = { path = "app/composer.json", json = { "/require/acme~1store" = "{{ release }}" } }

[[step]]
id = "motd"
template = { src = "templates/motd.j2", dest = "app/motd", mode = "0600" }

[[step]]
id = "check"
run = "grep -q 1.1.0 app/composer.json && test -f app/motd && exit 9"
"#,
    );
    let before = sandbox.read("app/composer.json");
    let run = sandbox.run(&["run", &playbook.to_string_lossy()]);
    run.code(1);
    assert!(run.stderr.contains("Failed check: exit code 9"), "{}", run.stderr);
    assert_eq!(sandbox.read("app/composer.json"), before, "restored byte for byte");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(sandbox.path().join("app/composer.json")).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert!(!sandbox.path().join("app/motd").exists(), "a file the template created is removed");
    // And without the failure, the edit lands with the mode kept.
    std::fs::write(&playbook, std::fs::read_to_string(&playbook).unwrap().replace("exit 9", "exit 0")).unwrap();
    sandbox.run(&["run", &playbook.to_string_lossy()]).code(0);
    assert!(sandbox.read("app/composer.json").contains("\"acme/store\": \"1.1.0\""));
    assert_eq!(sandbox.read("app/motd"), "Upgrading to 1.1.0\n");
    assert_eq!(std::fs::metadata(sandbox.path().join("app/motd")).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn json_events_are_versioned_ndjson() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write("p.toml", &format!("format = 1\nname = \"events\"\n{}", step("one", "")));
    let run = sandbox.run(&["run", &playbook.to_string_lossy(), "--format", "json"]);
    run.code(0);
    let events: Vec<serde_json::Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.iter().all(|e| e["v"] == 1));
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["run_started", "step_started", "step_finished", "run_finished"]);
    assert_eq!(events[2]["outcome"], "ok");
    assert_eq!(events[3]["outcome"], "succeeded");
}
