//! The operator's experience: exit codes and formats as README promises,
//! `status` of one run and its log, `init`, completions and manual pages,
//! Markdown that shows every line, diffs that agree with `plan`, and
//! messages that name what is wrong.

use crate::{Sandbox, in_repo, root};

/// Replaces the numbers that change from machine to machine.
fn scrub(sandbox: &Sandbox, text: &str) -> String {
    let text = sandbox.scrub(text);
    let free = regex::Regex::new(r"\d+ \(at least 10240\)").unwrap();
    free.replace_all(&text, "[FREE] (at least 10240)").into_owned()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

const TOUR: &str = r#"format = 1
name = "tour"
[vars]
fail = false
[[step]]
id = "hello"
run = "echo hello from try {{ step.attempt }}; echo to stderr >&2"
[[step]]
id = "maybe"
run = "test {{ fail }} = false"
"#;

#[test]
fn status_lists_newest_first_shows_one_run_in_full_and_prints_its_log() {
    let sandbox = Sandbox::new();
    let p = sandbox.write("p.toml", TOUR).to_string_lossy().into_owned();
    sandbox.run(&["run", &p]).code(0);
    sandbox.run(&["run", &p, "--var", "fail=true"]).code(1);
    let list = json(&sandbox.run(&["status", "--format", "json"]).stdout);
    let runs = list["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["state"], "rolled-back", "newest first: {list}");
    assert_eq!(runs[1]["state"], "succeeded");
    let (newest, oldest) = (runs[0]["run_id"].as_str().unwrap(), runs[1]["run_id"].as_str().unwrap());
    let text = sandbox.run(&["status"]).stdout;
    assert!(text.find(newest).unwrap() < text.find(oldest).unwrap(), "{text}");

    // `--last` and `status RUN_ID` (a unique prefix will do): one run in full.
    let last = sandbox.run(&["status", "--last"]);
    last.code(0);
    assert!(last.stdout.starts_with(&format!("run {newest}\n")), "{}", last.stdout);
    assert!(last.stdout.contains("  state        rolled-back\n"), "{}", last.stdout);
    assert!(last.stdout.contains("failed      maybe"), "{}", last.stdout);
    assert!(last.stdout.contains(&format!("(`upshift status {newest} --log`)")), "{}", last.stdout);
    let detail = json(&sandbox.run(&["status", "--last", "--format", "json"]).stdout);
    assert_eq!(detail["run"]["run_id"], newest);
    assert!(detail["run"]["steps"][0]["duration_ms"].is_u64(), "{detail}");
    let unique = oldest.len() - 1;
    let one = sandbox.run(&["status", &oldest[..unique]]);
    one.code(0);
    assert!(one.stdout.starts_with(&format!("run {oldest}\n")), "{}", one.stdout);
    assert!(one.stdout.contains("  state        succeeded\n"), "{}", one.stdout);

    // The log: every line of every step, stdout and stderr, as it came.
    let log = sandbox.run(&["status", oldest, "--log"]);
    log.code(0);
    assert_eq!(log.stdout, "── hello (step) ──\nout| hello from try 1\nerr| to stderr\n");
    let journal = sandbox.path().join(format!(".state/runs/tour@default/{oldest}.log"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(journal).unwrap().permissions().mode() & 0o777, 0o600);

    // What cannot be answered is a usage error.
    let both = sandbox.run(&["status", "20"]);
    both.code(2);
    assert!(both.stderr.contains("error: `20` names 2 runs"), "{}", both.stderr);
    let none = sandbox.run(&["status", "nosuchrun"]);
    none.code(2);
    assert!(none.stderr.contains("error: no run `nosuchrun` in"), "{}", none.stderr);
    let which = sandbox.run(&["status", "--log"]);
    which.code(2);
    assert!(which.stderr.contains("`upshift status RUN_ID --log`"), "{}", which.stderr);
    // `--env` filters the runs, with or without a playbook.
    assert_eq!(sandbox.run(&["status", "--env", "staging"]).stdout, "no runs yet\n");
}

#[test]
fn run_talks_on_stderr_and_leaves_stdout_to_the_product() {
    let sandbox = Sandbox::new();
    let p = sandbox.write("p.toml", TOUR).to_string_lossy().into_owned();
    let run = sandbox.run(&["run", &p]);
    run.code(0);
    assert_eq!(run.stdout, "", "text output is the conversation: stderr");
    assert!(run.stderr.contains("Finished hello"), "{}", run.stderr);
    let run = sandbox.run(&["run", &p, "--format", "json"]);
    run.code(0);
    assert!(run.stdout.lines().all(|line| json(line)["v"] == 1), "{}", run.stdout);
}

#[test]
fn a_completed_rollback_exits_0_after_a_run_that_failed_exits_1() {
    let sandbox = Sandbox::new();
    let p = sandbox
        .write("p.toml", "format = 1\nname = \"undo\"\n[[step]]\nid = \"a\"\nrun = \"touch a\"\nrollback = \"rm a\"\n[[step]]\nid = \"b\"\nrun = \"test -f go\"\n")
        .to_string_lossy()
        .into_owned();
    // A failed run rolls back by itself: the run failed (1).
    sandbox.run(&["run", &p]).code(1);
    assert!(!sandbox.path().join("a").exists());
    // Interrupted the hard way, then undone on request: the rollback succeeded (0).
    let journal = {
        sandbox.write("go", "");
        let slow = p.replace("p.toml", "q.toml");
        sandbox.write(
            "q.toml",
            "format = 1\nname = \"undo2\"\n[[step]]\nid = \"a\"\nrun = \"touch a\"\nrollback = \"rm a\"\n[[step]]\nid = \"b\"\nrun = \"touch at-b; sleep 30\"\n",
        );
        let child = crate::engine::spawn(&sandbox, &["run", &slow]);
        crate::engine::wait_for(&sandbox.path().join("at-b"));
        crate::engine::signal(&child, "KILL");
        let _ = child.wait_with_output();
        crate::kill_processes_in(sandbox.path());
        slow
    };
    let rollback = sandbox.run(&["rollback", &journal]);
    rollback.code(0);
    assert!(rollback.stderr.contains("Done rolled-back"), "{}", rollback.stderr);
    assert!(!sandbox.path().join("a").exists(), "`a` was undone");
    let events = sandbox.run(&["status", "--last", "--format", "json"]);
    assert_eq!(json(&events.stdout)["run"]["state"], "rolled-back");
}

#[test]
fn a_format_that_means_nothing_is_refused_before_anything_runs() {
    let sandbox = Sandbox::new();
    let p = sandbox
        .write("p.toml", "format = 1\nname = \"f\"\n[[step]]\nid = \"a\"\nrun = \"touch ran\"\n")
        .to_string_lossy()
        .into_owned();
    let refused: &[(&[&str], &str)] = &[
        (&["run", &p, "--format", "markdown"], "`run` has no markdown output"),
        (&["validate", &p, "--format", "markdown"], "`validate` has no markdown output"),
        (&["status", "--format", "markdown"], "`status` has no markdown output"),
        (&["resume", "--format", "markdown"], "`resume` has no markdown output"),
        (&["rollback", "--format", "markdown"], "`rollback` has no markdown output"),
        (&["schema", "--format", "markdown"], "`schema` has no markdown output"),
        (&["diff", &p, "--against-env", "x", "--format", "json"], "`diff` has no json output"),
        (&["init", "--format", "json"], "`init` has no json output"),
    ];
    for (args, message) in refused {
        let run = sandbox.run(args);
        run.code(2);
        assert!(run.stderr.starts_with(&format!("error: {message}\n")), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}");
    }
    assert!(!sandbox.path().join("ran").exists(), "nothing ran");
    assert!(!sandbox.path().join(".state").exists(), "nothing was written");
    assert!(!sandbox.path().join("upgrade.toml").exists(), "`init` wrote nothing");
    sandbox.run(&["plan", &p, "--format", "markdown"]).code(0);
    sandbox.run(&["run", &p, "--dry-run", "--format", "markdown"]).code(0);
}

#[test]
fn plan_as_json_says_why_it_failed_with_the_exit_code() {
    let sandbox = Sandbox::new();
    // Invalid: the diagnostics, as `validate --format json` gives them.
    let bad = sandbox.write("bad.toml", "format = 1\nname = \"bad\"\n[[step]]\nid = \"a\"\nrun = \"ls {{ rot }}\"\n");
    let run = sandbox.run(&["plan", &bad.to_string_lossy(), "--format", "json"]);
    run.code(2);
    let error = json(&run.stdout);
    assert_eq!(error["v"], 1);
    assert_eq!(error["error"]["exit_code"], 2);
    assert_eq!(error["error"]["message"], "the playbook is invalid: 1 problem");
    assert_eq!(error["error"]["diagnostics"][0]["message"], "undeclared variable `rot`");
    assert_eq!(error["error"]["diagnostics"][0]["line"], 5);
    assert!(run.stderr.contains("undeclared variable `rot`"), "people still read it on stderr");
    // No version to choose: exit 3, the reason.
    let versions = sandbox.write(
        "v.toml",
        "format = 1\nname = \"v\"\n[version]\ncurrent = { value = \"1.0.0\" }\navailable = { list = [\"1.0.0\", \"1.1.0\"] }\n[[step]]\nid = \"a\"\nrun = \"true\"\n",
    );
    let run = sandbox.run(&["plan", &versions.to_string_lossy(), "--to", "1.2.0", "--format", "json"]);
    run.code(3);
    let error = json(&run.stdout);
    assert_eq!(error["error"]["exit_code"], 3);
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("`--to 1.2.0` is not an available version"), "{message}");
    assert_eq!(error["error"]["help"], "nothing was changed");
    // Not ready: the plan itself, and its `error`.
    let unready = sandbox.write(
        "u.toml",
        "format = 1\nname = \"u\"\n[[check]]\nname = \"never\"\nrun = \"false\"\nhint = \"it never passes\"\n[[step]]\nid = \"a\"\nrun = \"true\"\n",
    );
    let run = sandbox.run(&["plan", &unready.to_string_lossy(), "--format", "json"]);
    run.code(3);
    let plan = json(&run.stdout);
    assert_eq!(plan["ready"], false);
    assert_eq!(plan["checks"][0]["status"], "failed");
    assert_eq!(plan["error"]["exit_code"], 3);
    assert_eq!(plan["error"]["message"], "not ready: 1 readiness check failed");
}

#[test]
fn markdown_shows_every_line_of_every_command() {
    let sandbox = Sandbox::new();
    let p = sandbox.write(
        "p.toml",
        r#"format = 1
name = "lines"
[[step]]
id = "clean"
run = """
mkdir -p var/cache
rm -rf var/cache/* | tee -a log
if [ -d generated ]; then
  rm -rf generated/code   # keep <this> & that
fi
"""
rollback = """
echo one
echo `two`
"""
[[step]]
id = "quoted"
run = "echo `date` | wc -c"
[[finally]]
id = "ask"
pause = """
Check the store.
Then say yes."""
"#,
    );
    let run = sandbox.run(&["plan", &p.to_string_lossy(), "--format", "markdown"]);
    run.code(0);
    assert!(run.stdout.contains("<code>rm -rf var/cache/* &#124; tee -a log</code>"), "{}", run.stdout);
    assert!(run.stdout.contains("<code>fi</code>"), "the last line too: {}", run.stdout);
    insta::assert_snapshot!(run.stdout);
}

/// A read-only step's output decides a guard: `diff` reads it as `plan` does.
#[test]
fn diff_and_plan_agree_on_every_guard() {
    let sandbox = Sandbox::new();
    sandbox.write("environments/on.toml", "[vars]\nmode = \"on\"\n");
    sandbox.write("environments/off.toml", "[vars]\nmode = \"off\"\n");
    let p = sandbox.write(
        "p.toml",
        r#"format = 1
name = "guards"
[vars]
mode = "off"
[[step]]
id = "state"
read_only = true
run = "echo {{ mode }}"
[[step]]
id = "work"
when = "steps.state.stdout == 'on'"
run = "echo work"
[[finally]]
id = "after"
when = "steps.state.stdout == 'off'"
run = "echo after"
"#,
    );
    let p = p.to_string_lossy().into_owned();
    let status = |env: &str, step: &str| {
        let plan = json(&sandbox.run(&["plan", &p, "--env", env, "--format", "json"]).stdout);
        let all: Vec<serde_json::Value> =
            plan["steps"].as_array().unwrap().iter().chain(plan["finally"].as_array().unwrap()).cloned().collect();
        all.iter().find(|s| s["id"] == step).unwrap()["status"].as_str().unwrap().to_owned()
    };
    assert_eq!((status("on", "work"), status("on", "after")), ("will-run".into(), "skipped".into()));
    assert_eq!((status("off", "work"), status("off", "after")), ("skipped".into(), "will-run".into()));
    let diff = sandbox.run(&["diff", &p, "--env", "on", "--against-env", "off"]);
    diff.code(0);
    assert!(
        diff.stdout.contains("    2. work\n-      will run\n+      skipped: `steps.state.stdout == 'on'` is false\n"),
        "{}",
        diff.stdout
    );
    assert!(
        diff.stdout.contains("    1. after\n-      skipped: `steps.state.stdout == 'off'` is false\n+      will run\n"),
        "{}",
        diff.stdout
    );
    assert!(!diff.stdout.contains("decided at run time\n"), "{}", diff.stdout);
    // On a terminal, or asked: colored.
    let colored = sandbox.run(&["diff", &p, "--env", "on", "--against-env", "off", "--color", "always"]);
    let shown = colored.stdout.replace('\x1b', "␛");
    assert!(shown.contains("␛[31m-      will run␛[0m\n␛[32m+      skipped"), "{shown}");
    assert!(shown.starts_with("␛[1m--- plan (env on)␛[0m\n␛[1m+++ plan (env off)␛[0m\n␛[36m@@"), "{shown}");
}

#[test]
fn the_plan_summary_counts_what_the_steps_say() {
    let sandbox = Sandbox::new();
    let app = sandbox.path().join("app");
    let run =
        in_repo(&sandbox, &["plan", "playbooks/quickstart/upgrade.toml", "--var", &format!("root={}", app.display())]);
    run.code(0);
    let later = run.stdout.matches("its change is known only at run time").count();
    assert_eq!(later, 2, "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "9 steps and 1 finally: 10 will run, 0 skipped, 0 decided at run time, 2 file changes known only at run time;"
        ),
        "{}",
        run.stdout
    );
    let markdown = in_repo(
        &sandbox,
        &[
            "plan",
            "playbooks/quickstart/upgrade.toml",
            "--var",
            &format!("root={}", app.display()),
            "--format",
            "markdown",
        ],
    );
    assert!(
        markdown.stdout.contains(
            "**10** will run · **0** skipped · **0** decided at run time · **2** file changes known only at run time"
        ),
        "{}",
        markdown.stdout
    );
}

#[test]
fn a_missing_working_directory_is_named_as_such() {
    let sandbox = Sandbox::new();
    let p = sandbox.write(
        "p.toml",
        r#"format = 1
name = "cwd"
[vars]
dir = "nowhere"
[[check]]
name = "in the app"
run = "true"
cwd = "{{ dir }}"
[[step]]
id = "read"
read_only = true
run = "cat VERSION"
cwd = "{{ dir }}"
[[step]]
id = "work"
run = "touch done"
cwd = "{{ dir }}"
"#,
    );
    let p = p.to_string_lossy().into_owned();
    let plan = sandbox.run(&["plan", &p]);
    plan.code(3);
    let gone = "its working directory `[SANDBOX]/nowhere` does not exist";
    assert!(
        sandbox.scrub(&plan.stdout).contains(&format!("FAILED in the app: could not start: {gone}")),
        "{}",
        plan.stdout
    );
    assert!(sandbox.scrub(&plan.stdout).contains(&format!("output    could not start: {gone}")), "{}", plan.stdout);
    std::fs::write(sandbox.path().join("VERSION"), "1").unwrap();
    sandbox.run(&["run", &p, "--var", "dir=."]).code(0);
    let p2 = sandbox.write(
        "q.toml",
        &std::fs::read_to_string(&p)
            .unwrap()
            .replace("name = \"cwd\"", "name = \"cwd2\"")
            .replace("[[check]]\nname = \"in the app\"\nrun = \"true\"\ncwd = \"{{ dir }}\"\n", "")
            .replace("[[step]]\nid = \"read\"\nread_only = true\nrun = \"cat VERSION\"\ncwd = \"{{ dir }}\"\n", ""),
    );
    let run = sandbox.run(&["run", &p2.to_string_lossy()]);
    run.code(1);
    assert!(sandbox.scrub(&run.stderr).contains(&format!("Failed work: {gone}\n")), "{}", run.stderr);
    // A version probe's working directory too.
    let probe = sandbox.write(
        "v.toml",
        "format = 1\nname = \"v\"\n[version]\ncurrent = { run = \"cat VERSION\", cwd = \"nowhere\" }\navailable = { list = [\"1.0.0\"] }\n[[step]]\nid = \"a\"\nrun = \"true\"\n",
    );
    let plan = sandbox.run(&["plan", &probe.to_string_lossy()]);
    plan.code(3);
    assert!(
        sandbox.scrub(&plan.stderr).starts_with(&format!(
            "error: cannot choose a version: cannot read the current version: `cat VERSION` could not start: {gone}\n"
        )),
        "{}",
        plan.stderr
    );
}

#[test]
fn init_writes_a_starter_that_validates_and_plans_and_never_overwrites() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("shop");
    std::fs::create_dir_all(&dir).unwrap();
    let init = sandbox.run_in(&dir, &["init"]);
    init.code(0);
    assert!(init.stderr.contains("Created upgrade.toml"), "{}", init.stderr);
    let playbook = std::fs::read_to_string(dir.join("upgrade.toml")).unwrap();
    assert!(playbook.starts_with("#:schema schema/playbook.schema.json\n"), "{playbook}");
    assert!(playbook.contains("name = \"shop-upgrade\""), "{playbook}");
    let schema = std::fs::read_to_string(dir.join("schema/playbook.schema.json")).unwrap();
    assert_eq!(schema, std::fs::read_to_string(root().join("schema/playbook.schema.json")).unwrap());
    sandbox.run_in(&dir, &["validate", "upgrade.toml"]).code(0);
    sandbox.run_in(&dir, &["validate", "upgrade.toml", "--env", "staging"]).code(0);
    let plan = sandbox.run_in(&dir, &["plan", "upgrade.toml", "--env", "staging"]);
    plan.code(0);
    insta::assert_snapshot!(scrub(&sandbox, &plan.stdout));
    // And it runs as written (its commands only say what to replace them with).
    let run = sandbox.run_in(&dir, &["run", "upgrade.toml", "--env", "staging"]);
    run.code(0);
    // Never over what is there: nothing is written, not even the missing files.
    std::fs::remove_file(dir.join("environments/staging.toml")).unwrap();
    std::fs::write(dir.join("upgrade.toml"), "mine").unwrap();
    let again = sandbox.run_in(&dir, &["init"]);
    again.code(2);
    assert!(again.stderr.contains("error: `init` would overwrite `upgrade.toml`"), "{}", again.stderr);
    assert_eq!(std::fs::read_to_string(dir.join("upgrade.toml")).unwrap(), "mine");
    assert!(!dir.join("environments/staging.toml").exists());
}

#[test]
fn completions_and_manual_pages() {
    let sandbox = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let run = sandbox.run(&["completions", shell]);
        run.code(0);
        for word in ["upshift", "rollback", "accept-changes", "completions"] {
            assert!(run.stdout.contains(word), "{shell} lacks {word}");
        }
    }
    let man = sandbox.run(&["man"]);
    man.code(0);
    assert!(man.stdout.contains(".TH upshift 1"), "{}", man.stdout);
    assert!(man.stdout.contains("rollback"), "{}", man.stdout);
    let dir = sandbox.path().join("man");
    sandbox.run(&["man", "--out-dir", &dir.to_string_lossy()]).code(0);
    for page in ["upshift.1", "upshift-run.1", "upshift-status.1"] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
}

/// On a terminal each step is a spinner; a signal clears it before saying
/// anything, so no frozen spinner line stays on screen.
#[test]
fn no_spinner_stays_on_screen_after_a_signal() {
    use std::process::Stdio;
    let sandbox = Sandbox::new();
    let p = sandbox.write(
        "p.toml",
        "format = 1\nname = \"spin\"\n[[step]]\nid = \"long\"\nrun = \"echo working; touch started; sleep 30\"\nidempotent = true\n",
    );
    let bin = assert_cmd::cargo::cargo_bin("upshift");
    let command = format!("{} run {}", bin.display(), p.display());
    let child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .current_dir(sandbox.path())
        .env("UPSHIFT_STATE_DIR", sandbox.path().join(".state"))
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    crate::engine::wait_for(&sandbox.path().join("started"));
    std::thread::sleep(std::time::Duration::from_millis(400));
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sandbox.path().join(".state/lock")).unwrap()).unwrap();
    let pid = lock["pid"].as_u64().unwrap().to_string();
    std::process::Command::new("kill").args(["-s", "INT", &pid]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    let screen = String::from_utf8_lossy(&output.stdout).into_owned();
    let frame = screen.rfind("long [").unwrap_or_else(|| panic!("no spinner was drawn: {screen:?}"));
    let notice = screen.find("interrupted by SIGINT during `long`").unwrap_or_else(|| panic!("{screen:?}"));
    assert!(frame < notice, "a spinner frame came after the notice: {screen:?}");
    // Between the last frame and the notice, the line was erased.
    assert!(screen[frame..notice].contains("\x1b[2K"), "the spinner line was not cleared: {:?}", &screen[frame..]);
    assert!(!screen[notice..].contains("long ["), "{screen:?}");
}

/// Every `upshift` line of the CI examples runs as written (the quickstart
/// playbook standing in for the store's), with the flags that exist.
#[test]
fn the_ci_examples_run_as_written() {
    let bin = assert_cmd::cargo::cargo_bin("upshift");
    let bin_dir = bin.parent().unwrap();
    for file in ["examples/ci/github-actions.yml", "examples/ci/gitlab-ci.yml"] {
        let sandbox = Sandbox::new();
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .map(|line| line.strip_prefix("- ").unwrap_or(line))
            .map(|line| line.strip_prefix("run: ").unwrap_or(line))
            .filter(|line| line.starts_with("upshift "))
            .collect();
        assert_eq!(lines.len(), if file.contains("github") { 6 } else { 5 }, "{file}: {lines:#?}");
        for line in lines {
            let output = std::process::Command::new("sh")
                .args(["-ec", line])
                .current_dir(sandbox.path())
                .env_clear()
                .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
                .env("HOME", sandbox.path())
                .env("UPSHIFT_STATE_DIR", sandbox.path().join(".state"))
                .env("PLAYBOOK", root().join("playbooks/quickstart/upgrade.toml"))
                .env("UPSHIFT_ENV", "staging")
                .output()
                .unwrap();
            assert!(output.status.success(), "{file}: `{line}`: {}", String::from_utf8_lossy(&output.stderr));
        }
        assert!(sandbox.read("plan.txt").starts_with("Plan for `quickstart` (environment `staging`)\n"));
        assert_eq!(json(&sandbox.read("plan.json"))["v"], 1);
        assert!(sandbox.read("plan.md").starts_with("### upshift plan: `quickstart` on `staging`\n"));
    }
}

/// README's playbook validates as shown.
#[test]
fn the_readme_playbook_validates_as_shown() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = &readme[readme.find("## A playbook").unwrap()..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let toml = &section[start..start + section[start..].find("```").unwrap()];
    let sandbox = Sandbox::new();
    let playbook = sandbox.write("p.toml", toml);
    let run = sandbox.run(&["validate", &playbook.to_string_lossy()]);
    run.code(0);
}

/// README's tour, run as written: every line it shows of `run` and `plan`
/// (but `…`) comes out, in order.
#[test]
fn the_readme_tour_comes_out_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let sandbox = Sandbox::new();
    let tour = sandbox.path().join("upshift-tour");
    let normalize = |text: &str| -> String {
        let text = text.replace(&tour.display().to_string(), "/tmp/upshift-tour");
        let rules = [
            (r"\d{8}T\d{9}Z-\d{5}", "RUN"),
            (r" in \d+\.\d+s", " in Ns"),
            (r"sqlite3 is installed: \d+\.\d+\.\d+", "sqlite3 is installed: N"),
            (r"\(KiB\): \d+", "(KiB): N"),
        ];
        rules.iter().fold(text, |text, (pattern, with)| {
            regex::Regex::new(pattern).unwrap().replace_all(&text, *with).into_owned()
        })
    };
    let mut blocks = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in readme.lines() {
        if line.starts_with("$ ") || line.starts_with("```") {
            blocks.extend(current.take());
        }
        if let Some(command) = line.strip_prefix("$ upshift ")
            && command.contains("root=/tmp/upshift-tour")
            && (command.starts_with("run ") || command.starts_with("plan "))
        {
            current = Some((command.to_owned(), Vec::new()));
        } else if let Some((_, lines)) = &mut current
            && line.trim() != "…"
        {
            lines.push(line.to_owned());
        }
    }
    assert_eq!(blocks.len(), 3, "{blocks:#?}");
    for (command, expected) in blocks {
        let args: Vec<String> =
            shell_words::split(&command.replace("/tmp/upshift-tour", &tour.display().to_string())).unwrap();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = in_repo(&sandbox, &args);
        run.code(0);
        let actual = normalize(&format!("{}{}", run.stdout, run.stderr));
        let actual: Vec<&str> = actual.lines().collect();
        let mut at = 0;
        for line in expected {
            let line = normalize(&line);
            match actual[at..].iter().position(|a| *a == line) {
                Some(found) => at += found + 1,
                None => panic!(
                    "`upshift {command}`: README's line\n{line}\nis not in what comes out (after line {at}):\n{}",
                    actual.join("\n")
                ),
            }
        }
    }
}

/// An environment variable set to nothing is "empty", in the plan and for `run`.
#[test]
fn an_empty_secret_is_called_empty() {
    let sandbox = Sandbox::new().env("TOKEN", "");
    let p = sandbox.write(
        "p.toml",
        "format = 1\nname = \"empty\"\n[secrets.token]\nenv = \"TOKEN\"\n[[step]]\nid = \"a\"\nrun = \"echo {{ secrets.token }}\"\n",
    );
    let plan = sandbox.run(&["plan", &p.to_string_lossy()]);
    plan.code(0);
    assert!(plan.stdout.contains("  token  env TOKEN  empty\n"), "{}", plan.stdout);
    let run = sandbox.run(&["run", &p.to_string_lossy()]);
    run.code(3);
    assert!(run.stderr.contains("`token`: the environment variable `TOKEN` is empty"), "{}", run.stderr);
}
