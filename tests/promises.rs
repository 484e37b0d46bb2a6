//! The promises an operator relies on, tried as an attacker or a bad night
//! would: a crash or a signal in `finally`, a step that outlives a killed
//! upshift, a vanished terminal, a rollback after a crash, planted symlinks,
//! files that would hang a reader, a damaged journal, secrets in every form
//! output can carry. Each test failed before the engine was hardened.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::Sandbox;
use crate::engine::{log, signal, spawn, step, wait_for};

fn journal(sandbox: &Sandbox) -> std::path::PathBuf {
    let runs = sandbox.path().join(".state/runs");
    let dir = std::fs::read_dir(runs).unwrap().next().unwrap().unwrap().path();
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap()
}

/// Waits (bounded) for a spawned upshift to end and returns its exit code and stderr.
fn finish(child: std::process::Child) -> (i32, String) {
    let output = child.wait_with_output().unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn finally_is_journalled_and_resumed_exactly_once() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        &format!(
            "format = 1\nname = \"finally\"\n{}{}\
             [[finally]]\nid = \"f1\"\nrun = \"echo f1 >> log\"\n\
             [[finally]]\nid = \"f2\"\nrun = \"echo f2 >> log; touch at-f2; sleep 30\"\n\
             [[finally]]\nid = \"f3\"\nrun = \"echo f3 >> log\"\n",
            step("a", ""),
            step("b", "")
        ),
    );
    let p = playbook.to_string_lossy().into_owned();
    // SIGKILL while `f2` runs: its `sleep` outlives upshift.
    let child = spawn(&sandbox, &["run", &p]);
    wait_for(&sandbox.path().join("at-f2"));
    signal(&child, "KILL");
    finish(child);
    let status = sandbox.run(&["status"]);
    assert!(status.stdout.contains("unfinished: stopped during `f2` (finally)"), "{}", status.stdout);
    // While it still runs, neither resume nor rollback starts beside it.
    for command in ["resume", "rollback"] {
        let refused = sandbox.run(&[command]);
        refused.code(5);
        assert!(refused.stderr.contains("the interrupted step `f2` is still running"), "{}", refused.stderr);
        assert!(refused.stderr.contains("sleep 30"), "names what runs: {}", refused.stderr);
        assert!(refused.stderr.contains("--kill-orphans"), "{}", refused.stderr);
    }
    // Stopping it leaves a non-idempotent finally step that may have run in part.
    let asked = sandbox.run(&["resume", "--kill-orphans"]);
    asked.code(2);
    assert!(asked.stderr.contains("finally step `f2` was interrupted and is not idempotent"), "{}", asked.stderr);
    crate::wait_for_no_process_in(sandbox.path());
    let resume = sandbox.run(&["resume", "--skip-interrupted"]);
    resume.code(0);
    // f1 ran once, f2 once (interrupted, skipped by the operator), f3 once; no step ran again.
    assert_eq!(log(&sandbox), ["a", "b", "f1", "f2", "f3"]);
    let status = sandbox.run(&["status", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["runs"][0]["state"], "succeeded");

    // SIGTERM during `finally`: exit 130, and resume runs what is left of it.
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        &std::fs::read_to_string(&playbook)
            .unwrap()
            .replace("touch at-f2; sleep 30\"", "touch at-f2; test -f go || sleep 30\"\nidempotent = true"),
    );
    let p = playbook.to_string_lossy().into_owned();
    let child = spawn(&sandbox, &["run", &p]);
    wait_for(&sandbox.path().join("at-f2"));
    signal(&child, "TERM");
    let (code, stderr) = finish(child);
    assert_eq!(code, 130, "{stderr}");
    assert!(stderr.contains("interrupted by SIGTERM during `f2`"), "{stderr}");
    assert_eq!(log(&sandbox), ["a", "b", "f1", "f2"], "f3 waits for the resume");
    std::fs::write(sandbox.path().join("go"), "").unwrap();
    let resume = sandbox.run(&["resume"]);
    resume.code(0);
    assert!(resume.stderr.contains("`f2` was interrupted; running it again (it is idempotent)"), "{}", resume.stderr);
    assert_eq!(log(&sandbox), ["a", "b", "f1", "f2", "f2", "f3"], "f1 is not run again");
}

#[test]
fn sighup_is_handled_like_sigterm() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        &format!(
            "format = 1\nname = \"hup\"\n{}[[step]]\nid = \"long\"\nrun = \"touch started; sleep 30\"\nidempotent = true\n",
            step("first", "")
        ),
    );
    let child = spawn(&sandbox, &["run", &playbook.to_string_lossy()]);
    wait_for(&sandbox.path().join("started"));
    signal(&child, "HUP");
    let (code, stderr) = finish(child);
    assert_eq!(code, 130, "{stderr}");
    assert!(stderr.contains("interrupted by SIGHUP during `long`"), "{stderr}");
    // The step's process group was stopped with it: nothing is left running.
    crate::wait_for_no_process_in(sandbox.path());
    let status = sandbox.run(&["status"]);
    assert!(status.stdout.contains("unfinished: stopped during `long`"), "{}", status.stdout);
}

#[test]
fn a_closed_output_never_stops_a_run() {
    let sandbox = Sandbox::new();
    let mut text = String::from("format = 1\nname = \"pipe\"\n");
    for i in 0..30 {
        text.push_str(&format!("[[step]]\nid = \"s{i:02}\"\nrun = \"echo s{i:02} >> log; seq 1 200\"\n"));
    }
    let playbook = sandbox.write("p.toml", &text);
    for args in [vec!["run", "-v"], vec!["run", "--format", "json"]] {
        std::fs::remove_file(sandbox.path().join("log")).ok();
        let mut args = args;
        let p = playbook.to_string_lossy().into_owned();
        args.insert(1, &p);
        let mut child = spawn(&sandbox, &args);
        // Like `upshift run … | head -1`: the reader goes away at once.
        drop(child.stdout.take());
        drop(child.stderr.take());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}");
        assert_eq!(log(&sandbox).len(), 30, "{args:?}: every step ran");
        std::fs::remove_dir_all(sandbox.path().join(".state")).unwrap();
    }
}

#[test]
fn rollback_after_a_crash_undoes_the_interrupted_step_and_restores_every_snapshot() {
    let sandbox = Sandbox::new();
    sandbox.write("app/config.json", "{\n  \"version\": \"1.0.0\"\n}\n");
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "crash-rollback"

[[step]]
id = "first"
run = "echo first >> log"
rollback = "echo undo-first >> log"

[[step]]
id = "config"
edit = { path = "app/config.json", json = { "/version" = "1.1.0" } }

[[step]]
id = "half"
run = "echo half >> log; touch at-half; sleep 30; echo never >> log"
rollback = "echo undo-half >> log"
"#,
    );
    let before = sandbox.read("app/config.json");
    let child = spawn(&sandbox, &["run", &playbook.to_string_lossy()]);
    wait_for(&sandbox.path().join("at-half"));
    signal(&child, "KILL");
    finish(child);
    assert!(sandbox.read("app/config.json").contains("1.1.0"));
    // The edit's `finished` record never reached the journal (a crash right
    // after its snapshot and write): take it out.
    let path = journal(&sandbox);
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> =
        text.lines().filter(|l| !(l.contains("\"type\":\"finished\"") && l.contains("\"step\":\"config\""))).collect();
    std::fs::write(&path, format!("{}\n", kept.join("\n"))).unwrap();
    let rollback = sandbox.run(&["rollback", "--kill-orphans"]);
    rollback.code(0);
    assert_eq!(log(&sandbox), ["first", "half", "undo-half", "undo-first"], "{}", rollback.stderr);
    assert_eq!(sandbox.read("app/config.json"), before, "the snapshot on disk was restored");
    let status = sandbox.run(&["status"]);
    assert!(status.stdout.contains("state    rolled-back"), "{}", status.stdout);
}

#[test]
fn planted_symlinks_in_the_state_dir_are_refused_and_its_mode_is_fixed() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write("p.toml", &format!("format = 1\nname = \"links\"\n{}", step("a", "")));
    let victim = sandbox.write("victim.txt", "precious\n");
    let state = sandbox.path().join(".state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::symlink(&victim, state.join("lock")).unwrap();
    let run = sandbox.run(&["run", &playbook.to_string_lossy()]);
    run.code(4);
    assert!(run.stderr.contains("is a symlink; refusing to use it"), "{}", run.stderr);
    assert_eq!(sandbox.read("victim.txt"), "precious\n");
    assert!(log(&sandbox).is_empty());

    std::fs::remove_file(state.join("lock")).unwrap();
    let elsewhere = sandbox.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, state.join("runs")).unwrap();
    let run = sandbox.run(&["run", &playbook.to_string_lossy()]);
    run.code(4);
    assert!(run.stderr.contains("is a symlink; refusing to keep state there"), "{}", run.stderr);
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0, "nothing written through the link");
    assert_eq!(std::fs::metadata(&state).unwrap().mode() & 0o777, 0o700, "an open state dir is made private");

    std::fs::remove_file(state.join("runs")).unwrap();
    sandbox.run(&["run", &playbook.to_string_lossy()]).code(0);
}

#[test]
fn edits_change_content_only_keeping_links_owner_and_mode() {
    let sandbox = Sandbox::new();
    sandbox.write("real/config.json", "{ \"v\": 1 }\n");
    sandbox.write("templates/motd.j2", "hello\n");
    std::os::unix::fs::symlink("../real/config.json", {
        std::fs::create_dir_all(sandbox.path().join("app")).unwrap();
        sandbox.path().join("app/config.json")
    })
    .unwrap();
    let real = sandbox.path().join("real/config.json");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    let root = rustix_uid() == 0;
    if root {
        std::os::unix::fs::chown(&real, Some(65534), Some(65534)).unwrap();
    }
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "owners"

[[step]]
id = "config"
edit = { path = "app/config.json", json = { "/v" = 2 } }

[[step]]
id = "motd"
template = { src = "templates/motd.j2", dest = "app/motd" }
"#,
    );
    // A umask of 027: a new file is 0640, as any program would make it.
    let bin = assert_cmd::cargo::cargo_bin("upshift");
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("umask 027; exec {} run {}", bin.display(), playbook.display())])
        .current_dir(sandbox.path())
        .env("UPSHIFT_STATE_DIR", sandbox.path().join(".state"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let link = std::fs::symlink_metadata(sandbox.path().join("app/config.json")).unwrap();
    assert!(link.file_type().is_symlink(), "the symlink is still a symlink");
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "{ \"v\": 2 }\n");
    let meta = std::fs::metadata(&real).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o640);
    if root {
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "the owner is kept");
    }
    assert_eq!(std::fs::metadata(sandbox.path().join("app/motd")).unwrap().mode() & 0o777, 0o640);
}

fn rustix_uid() -> u32 {
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1)
}

/// Runs upshift, failing the test if it takes longer than `limit` (a hang).
fn run_bounded(sandbox: &Sandbox, args: &[&str], limit: Duration) -> (i32, String) {
    let child = spawn(sandbox, args);
    let started = Instant::now();
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        while started.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(50));
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return false;
            }
        }
        let _ = std::process::Command::new("kill").args(["-s", "KILL", &pid.to_string()]).status();
        true
    });
    let result = finish(child);
    assert!(!watchdog.join().unwrap(), "`upshift {}` hung", args.join(" "));
    result
}

#[test]
fn files_that_would_hang_or_exhaust_a_reader_are_refused() {
    let sandbox = Sandbox::new();
    let fifo = sandbox.path().join("fifo.toml");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let (code, stderr) = run_bounded(&sandbox, &["validate", "fifo.toml"], Duration::from_secs(20));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
    sandbox.write("partial.toml", "format = 1\n[[step]]\nid = \"x\"\nrun = \"true\"\n");
    std::os::unix::fs::symlink("/dev/zero", sandbox.path().join("zero.j2")).unwrap();
    std::os::unix::fs::symlink(&fifo, sandbox.path().join("fifo.j2")).unwrap();
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "hang"

[secrets.key]
file = "fifo.toml"

[[step]]
id = "inc"
include = "fifo.toml"

[[step]]
id = "zero"
template = { src = "zero.j2", dest = "out" }

[[step]]
id = "fifo"
template = { src = "fifo.j2", dest = "out2" }
"#,
    );
    let (code, stderr) = run_bounded(&sandbox, &["validate", &playbook.to_string_lossy()], Duration::from_secs(20));
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.matches("not a regular file").count(), 3, "{stderr}");
    // A secret file that is a FIFO or a device: `run` says so, nothing runs.
    let playbook = sandbox.write(
        "q.toml",
        "format = 1\nname = \"secret-fifo\"\n[secrets.key]\nfile = \"fifo.toml\"\n[[step]]\nid = \"a\"\nrun = \"echo a >> log\"\n",
    );
    let (code, stderr) = run_bounded(&sandbox, &["run", &playbook.to_string_lossy()], Duration::from_secs(20));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
    assert!(log(&sandbox).is_empty());
}

#[test]
fn a_damaged_journal_is_never_cut_silently_and_garbage_blocks_nothing() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write("p.toml", &format!("format = 1\nname = \"damage\"\n{}", step("a", "")));
    let p = playbook.to_string_lossy().into_owned();
    sandbox.run(&["run", &p]).code(0);
    let path = journal(&sandbox);
    // A whole last line that does not verify is damage, not a torn write.
    let mut text = std::fs::read_to_string(&path).unwrap();
    let last = text.lines().last().unwrap().to_owned();
    text = text.replace(&last, &last.replace("succeeded", "rolled-back"));
    std::fs::write(&path, &text).unwrap();
    let status = sandbox.run(&["status"]);
    status.code(0);
    assert!(status.stdout.contains("damaged") && status.stdout.contains("checksum mismatch"), "{}", status.stdout);
    let run = sandbox.run(&["run", &p]);
    run.code(5);
    assert!(run.stderr.contains("has a damaged journal"), "{}", run.stderr);
    std::fs::remove_file(&path).unwrap();
    // A file that is not a journal at all is ignored, with a warning.
    std::fs::write(path.with_file_name("zzz.jsonl"), b"\x00garbage\nmore\n").unwrap();
    let run = sandbox.run(&["run", &p]);
    run.code(0);
    assert!(run.stderr.contains("zzz.jsonl") && run.stderr.contains("not an upshift journal"), "{}", run.stderr);
    let status = sandbox.run(&["status"]);
    assert!(
        status.stdout.contains("state    succeeded") && status.stdout.contains("not a journal"),
        "{}",
        status.stdout
    );
}

#[test]
fn a_signal_before_anything_changed_exits_130_and_leaves_no_run() {
    let sandbox = Sandbox::new();
    // During a readiness check.
    let playbook = sandbox.write(
        "p.toml",
        &format!(
            "format = 1\nname = \"early\"\n[[check]]\nname = \"slow\"\nrun = \"touch in-check; sleep 30\"\n{}",
            step("a", "")
        ),
    );
    let child = spawn(&sandbox, &["run", &playbook.to_string_lossy()]);
    wait_for(&sandbox.path().join("in-check"));
    signal(&child, "INT");
    let (code, stderr) = finish(child);
    assert_eq!(code, 130, "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT before anything changed"), "{stderr}");
    crate::wait_for_no_process_in(sandbox.path());
    // During a secret's command (an optional one: its failure alone would not stop the run).
    let playbook = sandbox.write(
        "q.toml",
        &format!(
            "format = 1\nname = \"early2\"\n[secrets.key]\ncommand = [\"sh\", \"-c\", \"touch in-secret; sleep 30; echo value-value-value\"]\nrequired = false\n{}",
            step("a", "")
        ),
    );
    let child = spawn(&sandbox, &["run", &playbook.to_string_lossy()]);
    wait_for(&sandbox.path().join("in-secret"));
    signal(&child, "INT");
    let (code, stderr) = finish(child);
    assert_eq!(code, 130, "{stderr}");
    crate::wait_for_no_process_in(sandbox.path());
    let status = sandbox.run(&["status"]);
    assert_eq!(status.stdout, "no runs yet\n");
    assert!(log(&sandbox).is_empty());
    // During `plan`: the check it runs is stopped too.
    let child = spawn(&sandbox, &["plan", &sandbox.path().join("p.toml").to_string_lossy()]);
    std::fs::remove_file(sandbox.path().join("in-check")).unwrap();
    wait_for(&sandbox.path().join("in-check"));
    signal(&child, "INT");
    let (code, _) = finish(child);
    assert_eq!(code, 130);
    crate::wait_for_no_process_in(sandbox.path());
}

const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----";
const TOKEN: &str = "tok3n/with\"quotes'and$dollar-5f2e";

/// Every 8-byte window of a secret: none may show anywhere.
fn fragments(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    (0..bytes.len().saturating_sub(7))
        .map(|i| String::from_utf8_lossy(&bytes[i..i + 8]).into_owned())
        .filter(|f| !f.starts_with("-----") && !f.contains("PRIVATE") && !f.contains(" KEY"))
        .collect()
}

fn assert_hidden(what: &str, text: &str) {
    for secret in [PEM, TOKEN] {
        for fragment in fragments(secret) {
            assert!(!text.contains(&fragment), "{what} shows `{fragment}`:\n{text}");
        }
    }
}

#[test]
fn secrets_show_nowhere_in_any_form_mode_or_failure() {
    let sandbox = Sandbox::new().env("TOKEN", TOKEN);
    sandbox.write("key.pem", PEM);
    sandbox.write("templates/auth.j2", "{\"token\": \"{{ secrets.token }}\"}\n");
    sandbox.write("auth.json", "{\"token\": \"old-token-value\"}\n");
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "canary"

[secrets.token]
env = "TOKEN"

[secrets.key]
file = "key.pem"

[[check]]
name = "the check sees the value"
run = "test {{ secrets.token }} = \"$EXPECTED\""
env = { EXPECTED = "{{ secrets.token }}" }

[[step]]
id = "forms"
run = """
printf '%s\n' {{ secrets.key }}
printf '%s' {{ secrets.token }} | base64
printf 'Basic %s\n' "$(printf 'user:%s' {{ secrets.token }} | base64 -w0)"
printf '%s' {{ secrets.token }} | od -An -c | head -1 >/dev/null
python3 -c 'import json,sys,urllib.parse; v=sys.argv[1]; print(json.dumps(v)); print(json.dumps({"k": v})); print(urllib.parse.quote(v, safe="")); print(urllib.parse.quote_plus(v))' {{ secrets.token }}
set -x; : {{ secrets.token }}; set +x
head -c 1100000 /dev/zero | tr '\\0' 'x'; printf '%s' {{ secrets.token }}; head -c 1100000 /dev/zero | tr '\\0' 'y'; echo
"""

[[step]]
id = "auth"
template = { src = "templates/auth.j2", dest = "auth.json" }

[[step]]
id = "fail"
run = "echo {{ secrets.key }} >&2; echo failing with {{ secrets.token }} >&2; exit 1"
rollback = "echo rolling back {{ secrets.token }}; printf '%s\n' {{ secrets.key }}"

[[finally]]
id = "after"
run = "echo finally {{ secrets.token }}"
"#,
    );
    let p = playbook.to_string_lossy().into_owned();
    for args in [
        vec!["run", &p],
        vec!["run", &p, "-v"],
        vec!["run", &p, "--format", "json"],
        vec!["run", &p, "--format", "json", "-v"],
    ] {
        let run = sandbox.run(&args);
        run.code(1);
        assert_hidden(&format!("{args:?} stdout"), &run.stdout);
        assert_hidden(&format!("{args:?} stderr"), &run.stderr);
        assert!(run.stderr.contains("********") || run.stdout.contains("********"), "{args:?}");
        assert!(!run.stderr.contains("FAILED") && !run.stderr.contains("readiness check"), "the check passed");
        for format in ["text", "json"] {
            let status = sandbox.run(&["status", "--format", format]);
            assert_hidden("status", &status.stdout);
            let detail = sandbox.run(&["status", "--last", "--format", format]);
            assert_hidden("status --last", &detail.stdout);
        }
        // The run's log holds every line, all of them masked.
        let whole = sandbox.run(&["status", "--last", "--log"]);
        whole.code(0);
        assert_hidden("status --last --log", &whole.stdout);
        assert!(whole.stdout.contains("err| failing with ********\n"), "{}", whole.stdout);
        assert!(whole.stdout.starts_with("── forms (step) ──\nout| "), "{}", &whole.stdout[..200]);
        assert!(whole.stdout.contains("── after (finally) ──\nout| finally ********\n"), "{}", whole.stdout);
        assert!(whole.stdout.len() > 2_200_000, "the log keeps what the journal cuts: {}", whole.stdout.len());
        // The file that held the old token is back, and no copy of it stays behind.
        assert_eq!(sandbox.read("auth.json"), "{\"token\": \"old-token-value\"}\n");
        let beside: Vec<_> = std::fs::read_dir(sandbox.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".upshift-"))
            .collect();
        assert!(beside.is_empty(), "{beside:?}");
    }
    for format in ["text", "json", "markdown"] {
        let plan = sandbox.run(&["plan", &p, "--format", format]);
        assert_hidden("plan", &plan.stdout);
        assert!(!plan.stdout.contains("old-token-value"), "plan shows the file holding the secret");
    }
    let state = crate::examples::snapshot_tree(&sandbox.path().join(".state"));
    assert_eq!(
        state.iter().filter(|(path, _)| path.extension().is_some_and(|e| e == "log")).count(),
        4,
        "a log per run"
    );
    for (path, content) in state {
        let text = String::from_utf8_lossy(&content);
        assert_hidden(&path.display().to_string(), &text);
        assert!(!text.contains("old-token-value"), "{} holds the old secret file", path.display());
    }
    // A secret too short to hide is refused before anything runs.
    let short = Sandbox::new().env("TOKEN", "ab");
    let playbook = short.write(
        "p.toml",
        "format = 1\nname = \"short\"\n[secrets.token]\nenv = \"TOKEN\"\n[[step]]\nid = \"a\"\nrun = \"echo {{ secrets.token }} >> log\"\n",
    );
    let run = short.run(&["run", &playbook.to_string_lossy()]);
    run.code(3);
    assert!(run.stderr.contains("the value has 2 characters; a secret needs at least 8"), "{}", run.stderr);
    assert!(log(&short).is_empty());
}
