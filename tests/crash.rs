//! The crash harness: SIGKILL `run`, `resume` and `rollback` at random
//! moments in every phase (steps, rollback, finally), and in the undo of a
//! finished run (`rollback --yes` after a success), with steps whose
//! processes outlive the killed upshift, and an operator who answers what
//! upshift asks (resume or roll back, retry or skip an interrupted step, wait
//! for or stop leftovers) by looking at the machine, as a person would. At the
//! end every effect happened exactly once, in order, and every journal reads.
//!
//! `UPSHIFT_CRASH_ROUNDS` sets the number of rounds (CI runs a few hundred,
//! `scripts/torture N` thousands); `UPSHIFT_CRASH_SEED` replays a failure.

use std::collections::HashSet;
use std::time::Duration;

use crate::Sandbox;
use crate::engine::{log, signal, spawn};

const STEPS: usize = 10;
const FINALLY: usize = 2;

/// A small xorshift generator: reproducible from its seed.
struct Random(u64);

impl Random {
    fn below(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % max.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A playbook whose steps log their effect once each: some quickly, some
/// after a pause, some from a background child that outlives its shell (and
/// upshift, when upshift is killed). Rollbacks and `finally` steps log too;
/// rollbacks are idempotent, as the docs ask. `fail_at` makes a step fail (before any effect).
fn playbook(random: &mut Random, fail_at: Option<usize>) -> String {
    let mut text = String::from("format = 1\nname = \"crash\"\n");
    for i in 0..STEPS {
        let effect = format!("echo s{i:02} >> log");
        let run = match (fail_at == Some(i), random.below(3)) {
            (true, _) => "sleep 0.01; exit 1".to_owned(),
            (false, 0) => effect,
            (false, 1) => format!("sleep 0.0{}; {effect}", 1 + random.below(4)),
            // The effect comes from a child that outlives the shell if upshift dies.
            (false, _) => format!("(sleep 0.0{}; {effect}) & wait", 1 + random.below(4)),
        };
        text.push_str(&format!(
            "[[step]]\nid = \"s{i:02}\"\nrun = \"{run}\"\nrollback = \"grep -qx undo-s{i:02} log || echo undo-s{i:02} >> log\"\n"
        ));
    }
    for i in 0..FINALLY {
        text.push_str(&format!("[[finally]]\nid = \"f{i}\"\nrun = \"sleep 0.01; echo f{i} >> log\"\n"));
    }
    text
}

/// The run's last state, as `status --format json` says (it must always read).
fn state(sandbox: &Sandbox) -> Option<String> {
    let status = sandbox.run(&["status", "--format", "json"]);
    status.code(0);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).expect("status is JSON");
    assert!(json["unreadable"].as_array().is_none_or(|u| u.is_empty()), "an unreadable journal: {}", status.stdout);
    json["runs"].as_array().and_then(|runs| runs.last()).map(|run| run["state"].as_str().unwrap_or("").to_owned())
}

/// Where kills landed: before the journal, in steps, in rollback, in finally,
/// and how many of those in the undo of a finished run.
#[derive(Debug, Default, Clone, Copy)]
struct Landed {
    before: usize,
    steps: usize,
    rollback: usize,
    finally: usize,
    undo: usize,
}

/// Has the run's journal an `undo` record (a finished run being undone)?
fn undoing(sandbox: &Sandbox) -> bool {
    crate::examples::snapshot_tree(&sandbox.path().join(".state/runs")).into_iter().any(|(path, content)| {
        path.extension().is_some_and(|e| e == "jsonl")
            && String::from_utf8_lossy(&content).contains("\"type\":\"undo\"")
    })
}

/// Drives the run to its end through kills, as an operator would; with
/// `undo`, a run that succeeds is then undone (`rollback --yes`), through
/// kills too. Returns the final state and where the kills landed.
fn operate(
    sandbox: &Sandbox,
    path: &str,
    undo: bool,
    random: &mut Random,
    trace: &mut Vec<String>,
) -> (String, Landed) {
    let mut command: Vec<String> = vec!["run".into(), path.into()];
    let mut kills = Landed::default();
    let undo_it: Vec<String> = vec!["rollback".into(), "--yes".into()];
    for attempt in 0..300 {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let child = spawn(sandbox, &args);
        let kill = attempt < 60 && random.chance(60);
        if kill {
            // An undo is short: aim its kills within it.
            let within = if command == undo_it { 120_000 } else { 250_000 };
            std::thread::sleep(Duration::from_micros(random.below(within)));
            signal(&child, "KILL");
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        trace.push(format!("{args:?} → {:?}{}", output.status.code(), if kill { " (kill sent)" } else { "" }));
        let Some(code) = output.status.code() else {
            let now = state(sandbox);
            if now.as_deref().is_some_and(|s| s.starts_with("unfinished")) && undoing(sandbox) {
                kills.undo += 1;
            }
            match now {
                None => kills.before += 1,
                Some(state) if state.ends_with("(rollback)") => kills.rollback += 1,
                Some(state) if state.ends_with("(finally)") => kills.finally += 1,
                Some(_) => kills.steps += 1,
            }
            // Killed: resume it, or sometimes undo it instead.
            command = if random.chance(25) { undo_it.clone() } else { vec!["resume".into()] };
            continue;
        };
        match code {
            0 | 1 => {
                let state = state(sandbox).expect("a run exists");
                if undo && state == "succeeded" {
                    command = undo_it.clone();
                    continue;
                }
                return (state, kills);
            }
            5 if stderr.contains("is still running") => {
                // Leftovers of a killed step: wait for them, or stop them.
                if random.chance(50) {
                    crate::wait_for_no_process_in(sandbox.path());
                } else if !command.iter().any(|c| c == "--kill-orphans") {
                    command.push("--kill-orphans".into());
                }
            }
            2 if stderr.contains("was interrupted and is not idempotent") => {
                // Look at the machine: did the interrupted step's effect happen?
                // (An undo runs `finally` a second time.)
                crate::wait_for_no_process_in(sandbox.path());
                let id = stderr.split("step `").nth(1).unwrap().split('`').next().unwrap().to_owned();
                let wanted = if id.starts_with('f') && undoing(sandbox) { 2 } else { 1 };
                let done = log(sandbox).iter().filter(|l| **l == id).count() >= wanted;
                let flag = if done { "--skip-interrupted" } else { "--retry-interrupted" };
                command = vec!["resume".into(), flag.into()];
            }
            2 if stderr.contains("there is no unfinished run") || stderr.contains("nothing to undo") => {
                match state(sandbox) {
                    // The kill came after the run (or its undo) ended, or before its journal existed.
                    Some(state) if undo && state == "succeeded" => command = undo_it.clone(),
                    Some(state) => return (state, kills),
                    None => command = vec!["run".into(), path.into()],
                }
            }
            // A kill before the journal existed can leave a run that has nothing to resume.
            _ => panic!("unexpected exit {code} from {args:?}:\n{stderr}\ntrace: {trace:#?}"),
        }
    }
    panic!("no end after 300 commands: {trace:#?}");
}

/// Exactly once, in order: steps as a prefix, then their undos newest first,
/// then every `finally` step.
fn check(lines: &[String], state: &str, fail_at: Option<usize>) -> Result<(), String> {
    if state == "undone" {
        return check_undone(lines);
    }
    let mut seen = HashSet::new();
    if let Some(twice) = lines.iter().find(|l| !seen.insert(l.as_str())) {
        return Err(format!("`{twice}` happened twice"));
    }
    let steps: Vec<&String> = lines.iter().take_while(|l| l.starts_with('s')).collect();
    let rest = &lines[steps.len()..];
    let undos: Vec<&String> = rest.iter().filter(|l| l.starts_with("undo-")).collect();
    let finally: Vec<&String> = rest.iter().filter(|l| l.starts_with('f')).collect();
    if undos.len() + finally.len() != rest.len() {
        return Err(format!("a step's effect after the steps ended: {rest:?}"));
    }
    // `finally` runs before an undo only when every step had completed (the
    // operator chose to roll back a run that was in its `finally`).
    let first_undo = rest.iter().position(|l| l.starts_with("undo-"));
    if first_undo.is_some_and(|u| rest[..u].iter().any(|l| l.starts_with('f'))) && steps.len() != STEPS {
        return Err(format!("`finally` ran before the rollback of an unfinished run: {rest:?}"));
    }
    for (i, line) in steps.iter().enumerate() {
        if **line != format!("s{i:02}") {
            return Err(format!("step effects out of order or missing at {i}: {line}"));
        }
    }
    let expected_finally: Vec<String> = (0..FINALLY).map(|i| format!("f{i}")).collect();
    if finally.iter().map(|s| s.as_str()).collect::<Vec<_>>() != expected_finally {
        return Err(format!("finally effects are {finally:?}"));
    }
    match state {
        "succeeded" => {
            if fail_at.is_some() || steps.len() != STEPS || !undos.is_empty() {
                return Err(format!("succeeded with {} steps and {} undos", steps.len(), undos.len()));
            }
        }
        "rolled-back" => {
            // Every completed step is undone, newest first; an interrupted step
            // whose effect never happened may be undone too (rollbacks tolerate that).
            let newest = undos.first().map_or(0, |u| u[6..].parse::<usize>().unwrap() + 1);
            if newest != steps.len() && newest != steps.len() + 1 {
                return Err(format!("{} steps ran but the newest undo is of step {newest}", steps.len()));
            }
            for (i, undo) in undos.iter().enumerate() {
                if **undo != format!("undo-s{:02}", newest - 1 - i) {
                    return Err(format!("undos out of order or missing: {undos:?}"));
                }
            }
            if newest != undos.len() {
                return Err(format!("undos stop early: {undos:?}"));
            }
        }
        other => return Err(format!("the run ended as {other}")),
    }
    Ok(())
}

/// A finished run undone: every step once, `finally`, every undo newest
/// first, then `finally` again; nothing else, nothing twice.
fn check_undone(lines: &[String]) -> Result<(), String> {
    let mut expected: Vec<String> = (0..STEPS).map(|i| format!("s{i:02}")).collect();
    expected.extend((0..FINALLY).map(|i| format!("f{i}")));
    expected.extend((0..STEPS).rev().map(|i| format!("undo-s{i:02}")));
    expected.extend((0..FINALLY).map(|i| format!("f{i}")));
    if lines != expected {
        return Err(format!("an undone run left {lines:?}"));
    }
    Ok(())
}

#[test]
fn killed_at_random_moments_every_effect_happens_exactly_once_in_order() {
    let rounds: usize = std::env::var("UPSHIFT_CRASH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let seed: u64 = std::env::var("UPSHIFT_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    // Two workers: the machine has two cores, and most of a round is waiting.
    let workers: Vec<_> = (0..2u64)
        .map(|worker| {
            std::thread::spawn(move || {
                let mut totals = (0usize, Landed::default(), 0usize, 0usize);
                for round in (worker as usize..rounds).step_by(2) {
                    let round_seed = seed.wrapping_add((round as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
                    let mut random = Random(round_seed);
                    let fail_at = random.chance(40).then(|| random.below(STEPS as u64) as usize);
                    let undo = fail_at.is_none() && random.chance(50);
                    let sandbox = Sandbox::new();
                    let path = sandbox.write("p.toml", &playbook(&mut random, fail_at));
                    let mut trace = Vec::new();
                    let (state, kills) = operate(&sandbox, &path.to_string_lossy(), undo, &mut random, &mut trace);
                    crate::wait_for_no_process_in(sandbox.path());
                    let lines = log(&sandbox);
                    if let Err(why) = check(&lines, &state, fail_at) {
                        panic!(
                            "round {round} (UPSHIFT_CRASH_SEED={seed}, round seed {round_seed}): {why}\nlog: {lines:?}\ntrace: {trace:#?}"
                        );
                    }
                    totals.0 += 1;
                    totals.1.before += kills.before;
                    totals.1.steps += kills.steps;
                    totals.1.rollback += kills.rollback;
                    totals.1.finally += kills.finally;
                    totals.1.undo += kills.undo;
                    totals.2 += usize::from(state == "rolled-back");
                    totals.3 += usize::from(state == "undone");
                }
                totals
            })
        })
        .collect();
    let (mut rounds_done, mut kills, mut rolled_back, mut undone) = (0, Landed::default(), 0, 0);
    for worker in workers {
        let (r, k, b, u) = worker.join().expect("a worker panicked");
        rounds_done += r;
        kills.before += k.before;
        kills.steps += k.steps;
        kills.rollback += k.rollback;
        kills.finally += k.finally;
        kills.undo += k.undo;
        rolled_back += b;
        undone += u;
    }
    eprintln!(
        "crash harness: {rounds_done} rounds, {rolled_back} ended rolled back, {undone} undone after a success; kills landed before the journal {}, in steps {}, in rollback {}, in finally {} ({} of them in an undo); 0 lost, doubled or out of order (seed {seed})",
        kills.before, kills.steps, kills.rollback, kills.finally, kills.undo
    );
}
