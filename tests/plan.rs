//! `diff`: rendered plans compared across environments and git revisions.

use crate::Sandbox;

fn playbook(sandbox: &Sandbox) -> std::path::PathBuf {
    sandbox.write("environments/staging.toml", "[vars]\nroot = \"/srv/staging\"\n");
    sandbox.write("environments/production.toml", "[vars]\nroot = \"/srv/production\"\njobs = 8\n");
    sandbox.write(
        "p.toml",
        "format = 1\nname = \"diffs\"\n[vars]\nroot = \"/srv/app\"\njobs = 2\n[[step]]\nid = \"build\"\nrun = \"make -C {{ root }} -j {{ jobs }}\"\n",
    )
}

#[test]
fn diff_between_environments() {
    let sandbox = Sandbox::new();
    let playbook = playbook(&sandbox);
    let run = sandbox.run(&["diff", &playbook.to_string_lossy(), "--env", "staging", "--against-env", "production"]);
    run.code(0);
    insta::assert_snapshot!(run.stdout);
}

#[test]
fn diff_against_a_git_revision() {
    let sandbox = Sandbox::new();
    let playbook = playbook(&sandbox);
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(sandbox.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .status()
            .unwrap();
        assert!(status.success());
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "first"]);
    let text = std::fs::read_to_string(&playbook).unwrap().replace("-j {{ jobs }}", "-j {{ jobs }} install");
    std::fs::write(&playbook, text).unwrap();
    let run = sandbox.run(&["diff", &playbook.to_string_lossy(), "--against", "HEAD"]);
    run.code(0);
    assert!(
        run.stdout.contains("-      run       make -C /srv/app -j 2\n+      run       make -C /srv/app -j 2 install"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.starts_with("--- plan (HEAD)\n+++ plan (working tree)\n"), "{}", run.stdout);
    let run = sandbox.run(&["diff", &playbook.to_string_lossy(), "--against", "no-such-rev"]);
    run.code(2);
    assert!(run.stderr.contains("cannot read revision `no-such-rev`"), "{}", run.stderr);
}

#[test]
fn identical_plans_say_so() {
    let sandbox = Sandbox::new();
    let playbook = playbook(&sandbox);
    let run = sandbox.run(&["diff", &playbook.to_string_lossy(), "--env", "staging", "--against-env", "staging"]);
    run.code(0);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("Identical"), "{}", run.stderr);
}
