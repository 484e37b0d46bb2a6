//! One broken playbook per file in `tests/fixtures/invalid/`: each must fail
//! `validate` with exit 2 and the diagnostic snapshotted beside it.

use crate::{Sandbox, in_repo};

#[test]
fn every_invalid_fixture_is_rejected_with_its_diagnostic() {
    let sandbox = Sandbox::new();
    insta::glob!("fixtures/invalid/*.toml", |path| {
        let relative = path.strip_prefix(crate::root()).expect("inside the repo");
        let run = in_repo(&sandbox, &["validate", &relative.to_string_lossy()]);
        run.code(2);
        assert!(run.stdout.is_empty(), "diagnostics go to stderr");
        insta::assert_snapshot!(run.stderr);
    });
}

/// Environment files beside a playbook are read by every `validate` in that
/// directory, so their broken fixtures live one playbook per directory:
/// `tests/fixtures/invalid-env/NAME/playbook.toml` with `environments/`.
#[test]
fn every_invalid_environment_fixture_is_rejected_with_its_diagnostic() {
    let sandbox = Sandbox::new();
    insta::glob!("fixtures/invalid-env/*/playbook.toml", |path| {
        let relative = path.strip_prefix(crate::root()).expect("inside the repo");
        let run = in_repo(&sandbox, &["validate", &relative.to_string_lossy()]);
        run.code(2);
        assert!(run.stdout.is_empty(), "diagnostics go to stderr");
        // The chosen environment is checked the same way.
        let env = std::fs::read_dir(path.parent().unwrap().join("environments")).unwrap().next().unwrap().unwrap();
        let name = env.path().file_stem().unwrap().to_string_lossy().into_owned();
        let chosen = in_repo(&sandbox, &["validate", &relative.to_string_lossy(), "--env", &name]);
        chosen.code(2);
        insta::assert_snapshot!(run.stderr);
    });
}

#[test]
fn validation_reports_every_problem_at_once_in_order() {
    let sandbox = Sandbox::new();
    let run = in_repo(&sandbox, &["validate", "tests/fixtures/invalid/many-problems.toml"]);
    run.code(2);
    let lines: Vec<usize> = run
        .stderr
        .lines()
        .filter_map(|line| line.trim().strip_prefix("--> tests/fixtures/invalid/many-problems.toml:"))
        .map(|rest| rest.split(':').next().unwrap().parse().unwrap())
        .collect();
    assert!(lines.len() >= 5, "{}", run.stderr);
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "sorted by position: {lines:?}");
    assert!(run.stderr.ends_with(&format!("error: found {} problems\n", lines.len())), "{}", run.stderr);
}

#[test]
fn validate_json_lists_diagnostics_with_positions() {
    let sandbox = Sandbox::new();
    let run = in_repo(
        &sandbox,
        &[
            "validate",
            "--format",
            "json",
            "tests/fixtures/invalid/undeclared-variable.toml",
            "playbooks/quickstart/upgrade.toml",
        ],
    );
    run.code(2);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(report["v"], 1);
    assert_eq!(report["valid"], false);
    let first = &report["playbooks"][0];
    assert_eq!(first["valid"], false);
    let diagnostic = &first["diagnostics"][0];
    assert_eq!(diagnostic["message"], "undeclared variable `roots`");
    assert_eq!(diagnostic["line"], 9);
    assert_eq!(diagnostic["column"], 14);
    assert_eq!(diagnostic["help"], "did you mean `root`?");
    assert_eq!(report["playbooks"][1]["valid"], true);
}

#[test]
fn an_invalid_playbook_executes_nothing() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "p"

[[check]]
name = "would leave a mark"
run = "touch check-ran"

[[step]]
id = "probe"
read_only = true
run = "touch step-ran"

[[step]]
id = "bad"
run = "echo {{ nope }}"
"#,
    );
    let run = sandbox.run(&["plan", &playbook.to_string_lossy()]);
    run.code(2);
    assert!(run.stderr.contains("undeclared variable `nope`"), "{}", run.stderr);
    assert!(!sandbox.path().join("check-ran").exists());
    assert!(!sandbox.path().join("step-ran").exists());
}

/// One pass finds every problem: keys that do not parse are left out and the
/// rest is checked; nothing is blamed on what was left out or on a
/// declaration with a problem of its own.
#[test]
fn one_pass_reports_every_problem_and_blames_nothing_on_another() {
    let sandbox = Sandbox::new();
    let run = in_repo(&sandbox, &["validate", "tests/fixtures/invalid/every-problem-at-once.toml"]);
    run.code(2);
    assert!(run.stderr.ends_with("error: found 13 problems\n"), "{}", run.stderr);
    for found in [
        "unknown key `runn`",
        "invalid type: integer `5`, expected a string",
        "undeclared variable `rooot`",
        "undeclared secret `tokn`",
        "invalid duration `5 parsecs`",
        "step `c` has 2 actions",
        "`exec` needs at least the program",
        "undeclared variable `nope`",
        "guard does not compile",
    ] {
        assert!(run.stderr.contains(found), "{found}: {}", run.stderr);
    }
    for blamed in
        ["has no action", "needs exactly one of", "declares no", "not an earlier step", "no `[version]` table"]
    {
        assert!(!run.stderr.contains(blamed), "{blamed}: {}", run.stderr);
    }
}
