//! upshift runs application upgrades written as TOML playbooks.
//!
//! The pipeline runs one way: TOML text → raw model (`raw`, `document`) →
//! checked [`Playbook`] (`check`) → rendered `Plan` (`plan`) → executed
//! (`engine`, journalled by `journal`, read back by `runs`) → reporters
//! (`report`, `events`). This file is the index and the exit codes; each
//! subcommand lives in `commands`.

mod check;
mod cli;
mod commands;
mod context;
mod diagnostic;
mod document;
mod edit;
mod engine;
mod events;
mod files;
mod journal;
mod lock;
mod plan;
mod playbook;
mod process;
mod raw;
mod readers;
mod readiness;
mod report;
mod runlog;
mod runs;
mod saved;
mod schema;
mod secrets;
mod select;
mod shell;
mod status;
mod template;
mod transport;
mod ui;
mod vars;
mod version;
mod window;

pub use check::{Inputs, load};
pub use cli::{Cli, ColorChoice, Command, Format, RunArgs};
pub use diagnostic::Diagnostic;
pub use playbook::Playbook;
pub use schema::{environment_schema, playbook_schema};

/// Exit codes, as DESIGN.md defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Success,
    /// A step failed and everything was rolled back.
    StepFailed,
    /// Invalid playbook or usage.
    Invalid,
    /// Readiness checks failed; nothing changed.
    NotReady,
    /// A rollback failed; an operator must act.
    RollbackIncomplete,
    /// Another run holds the lock, or an unfinished run exists.
    Locked,
    /// Interrupted by a signal.
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::StepFailed => 1,
            Exit::Invalid => 2,
            Exit::NotReady => 3,
            Exit::RollbackIncomplete => 4,
            Exit::Locked => 5,
            Exit::Interrupted => 130,
        }
    }
}

/// Runs one command line.
pub fn run(cli: Cli) -> Exit {
    init_tracing(cli.global.verbose);
    let ui = ui::Ui::new(&cli.global);
    let formats = cli.command.formats();
    if !formats.contains(&cli.global.format) {
        // Nothing runs on a request for an output the command does not have.
        let names: Vec<String> = formats.iter().map(|f| format!("`{}`", f.name())).collect();
        ui.error(&format!("`{}` has no {} output", cli.command.name(), cli.global.format.name()));
        ui.help(&match names.as_slice() {
            [one] => format!("`{}` prints {one} only", cli.command.name()),
            _ => format!("`--format` takes {} here", names.join(" or ")),
        });
        return Exit::Invalid;
    }
    match cli.command {
        Command::Validate(args) => commands::validate(&ui, &args.playbooks, &commands::inputs(&args.inputs)),
        Command::Plan(args) => commands::plan_command(&ui, &args),
        Command::Run(RunArgs { playbook: Some(playbook), dry_run: true, inputs, selection, .. }) => {
            commands::plan(&ui, &playbook, &commands::inputs(&inputs), &selection, None)
        }
        Command::Run(args) => commands::run(&ui, &cli.global, &args),
        Command::Resume(args) => commands::resume(&ui, &cli.global, &args),
        Command::Rollback(args) => commands::rollback(&ui, &cli.global, &args),
        Command::Status(args) => commands::status(&ui, &cli.global, &args),
        Command::Diff(args) => commands::diff(&ui, &args),
        Command::Schema(args) => {
            ui.stdout(&if args.environment { environment_schema() } else { playbook_schema() });
            Exit::Success
        }
        Command::Init(args) => commands::init(&ui, &args),
        Command::Completions(args) => commands::completions(&ui, args.shell),
        Command::Man(args) => commands::man(&ui, args.out_dir.as_deref()),
    }
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => return,
        1 => "upshift=debug",
        _ => "upshift=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
