//! The command line: clap's derive types and nothing else. What each command
//! does lives in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run application upgrades written as TOML playbooks.
#[derive(Debug, Parser)]
#[command(name = "upshift", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Where journals and locks live
    #[arg(
        long,
        global = true,
        env = "UPSHIFT_STATE_DIR",
        hide_env_values = true,
        default_value = ".upshift",
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// More detail on stderr (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// When to use color
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

impl Format {
    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Markdown => "markdown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check playbooks; change nothing
    Validate(ValidateArgs),
    /// Show what `run` would do: readiness, versions, rendered steps, file diffs; change nothing
    Plan(PlanArgs),
    /// Execute a playbook (`--dry-run` is `plan`), or exactly a saved plan (`--plan FILE`)
    Run(RunArgs),
    /// Continue the unfinished run from its journal
    Resume(ResumeArgs),
    /// Undo the completed steps of an unfinished or failed run, or of a finished one, newest first
    Rollback(RollbackArgs),
    /// Runs (newest first) and their steps, from the journals; one run in full, or its whole output
    Status(StatusArgs),
    /// Diff the rendered plans of two environments or two revisions
    Diff(DiffArgs),
    /// Print the JSON Schema of the playbook format
    Schema(SchemaArgs),
    /// Write a commented starter playbook and a staging environment
    Init(InitArgs),
    /// Print a shell completion script (`source <(upshift completions bash)`)
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write one per command into a directory
    Man(ManArgs),
}

impl Command {
    /// The command's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Validate(_) => "validate",
            Command::Plan(_) => "plan",
            Command::Run(_) => "run",
            Command::Resume(_) => "resume",
            Command::Rollback(_) => "rollback",
            Command::Status(_) => "status",
            Command::Diff(_) => "diff",
            Command::Schema(_) => "schema",
            Command::Init(_) => "init",
            Command::Completions(_) => "completions",
            Command::Man(_) => "man",
        }
    }

    /// The `--format`s this command has an output for.
    pub fn formats(&self) -> &'static [Format] {
        match self {
            Command::Plan(_) => &[Format::Text, Format::Json, Format::Markdown],
            Command::Run(args) if args.dry_run => &[Format::Text, Format::Json, Format::Markdown],
            Command::Validate(_)
            | Command::Run(_)
            | Command::Resume(_)
            | Command::Rollback(_)
            | Command::Status(_)
            | Command::Schema(_) => &[Format::Text, Format::Json],
            Command::Diff(_) | Command::Init(_) | Command::Completions(_) | Command::Man(_) => &[Format::Text],
        }
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write `upgrade.toml` and `environments/staging.toml`
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// The playbook's name (default: the directory's name)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `upshift.1` and one `upshift-COMMAND.1` per command into this directory instead
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// The schema of environment files instead
    #[arg(long)]
    pub environment: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Playbooks to check
    #[arg(required = true, value_name = "PLAYBOOK")]
    pub playbooks: Vec<PathBuf>,
    #[command(flatten)]
    pub inputs: InputArgs,
}

/// Where a playbook's variables come from.
#[derive(Debug, Args, Clone, Default)]
pub struct InputArgs {
    /// Environment: reads `environments/NAME.toml` beside the playbook
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// An environment file at another place
    #[arg(long, value_name = "PATH", conflicts_with = "env")]
    pub env_file: Option<PathBuf>,
    /// A TOML file of variable values
    #[arg(long, value_name = "PATH")]
    pub var_file: Vec<PathBuf>,
    /// Set a variable (highest precedence)
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The playbook
    #[arg(value_name = "PLAYBOOK", required_unless_present = "check")]
    pub playbook: Option<PathBuf>,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Also save the plan to FILE (mode 0600), for `run --plan FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// With `--out`: how long the plan holds, e.g. `36h` (default: until the current or next window closes, else 24h)
    #[arg(long, value_name = "DURATION", requires = "out", value_parser = humantime::parse_duration)]
    pub expires_in: Option<std::time::Duration>,
    /// Check that a saved plan is still current: exit 0, or 3 listing every difference
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = [
            "playbook", "out", "env", "env_file", "var_file", "vars", "to", "force_version", "allow_major", "allow_downgrade"
        ]
    )]
    pub check: Option<PathBuf>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct SelectionArgs {
    /// Pin the target version (must be available and satisfy `target`)
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// With `--to`: accept a version outside `target`
    #[arg(long)]
    pub force_version: bool,
    /// Allow a change of major version
    #[arg(long)]
    pub allow_major: bool,
    /// Allow a version older than the current one
    #[arg(long)]
    pub allow_downgrade: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The playbook
    #[arg(value_name = "PLAYBOOK", required_unless_present = "plan")]
    pub playbook: Option<PathBuf>,
    /// Run exactly this saved plan (`plan --out FILE`): its playbook, vars and version, re-probed first
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = [
            "playbook", "dry_run", "env", "env_file", "var_file", "vars", "to", "force_version", "allow_major",
            "allow_downgrade"
        ]
    )]
    pub plan: Option<PathBuf>,
    /// Show the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Start even outside the playbook's maintenance window
    #[arg(long)]
    pub ignore_window: bool,
    /// Start on hosts that carry the marker of this other unfinished run
    #[arg(long = "override", value_name = "RUN_ID")]
    pub override_run: Option<String>,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub selection: SelectionArgs,
    #[command(flatten)]
    pub approval: ApprovalArgs,
}

/// Answers to `pause` steps when there is no terminal.
#[derive(Debug, Args, Clone, Default)]
pub struct ApprovalArgs {
    /// Approve every `pause` step
    #[arg(long)]
    pub yes: bool,
    /// Approve the `pause` step with this id (repeatable)
    #[arg(long, value_name = "ID")]
    pub approve: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The playbook (default: the only unfinished run in the state dir)
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: Option<PathBuf>,
    /// Environment of the run to resume
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// Resume even though completed steps changed in the playbook
    #[arg(long)]
    pub accept_changes: bool,
    /// Run an interrupted, non-idempotent step again
    #[arg(long, conflicts_with = "skip_interrupted")]
    pub retry_interrupted: bool,
    /// Treat an interrupted step as completed (a rollback undoes it) and go on
    #[arg(long)]
    pub skip_interrupted: bool,
    /// Stop what still runs of the interrupted step (SIGTERM, then SIGKILL) instead of refusing
    #[arg(long)]
    pub kill_orphans: bool,
    /// Go on on hosts that carry the marker of this other unfinished run
    #[arg(long = "override", value_name = "RUN_ID")]
    pub override_run: Option<String>,
    #[command(flatten)]
    pub approval: ApprovalArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The playbook (default: the only unfinished run in the state dir, else the latest run)
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: Option<PathBuf>,
    /// Environment of the run to roll back
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// The run to roll back; a finished, successful run is undone
    #[arg(long = "run", value_name = "ID", conflicts_with_all = ["playbook", "env"])]
    pub run_id: Option<String>,
    /// Undo a finished run without asking (needed without a terminal)
    #[arg(long)]
    pub yes: bool,
    /// Run an interrupted, non-idempotent `finally` step again
    #[arg(long, conflicts_with = "skip_interrupted")]
    pub retry_interrupted: bool,
    /// Treat an interrupted `finally` step as completed and go on
    #[arg(long)]
    pub skip_interrupted: bool,
    /// Stop what still runs of the interrupted step (SIGTERM, then SIGKILL) instead of refusing
    #[arg(long)]
    pub kill_orphans: bool,
    /// Go on on hosts that carry the marker of this other unfinished run
    #[arg(long = "override", value_name = "RUN_ID")]
    pub override_run: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A playbook (only its runs), or a run id (that run in full; a unique prefix will do)
    #[arg(value_name = "PLAYBOOK|RUN_ID")]
    pub target: Option<String>,
    /// Only the runs in this environment
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// The newest run only, in full
    #[arg(long)]
    pub last: bool,
    /// Print the run's whole output, masked, from its log (with RUN_ID or `--last`)
    #[arg(long)]
    pub log: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The playbook
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: PathBuf,
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Compare with this environment
    #[arg(long, value_name = "NAME", required_unless_present = "against", conflicts_with = "against")]
    pub against_env: Option<String>,
    /// Compare with the playbook as committed at this git revision
    #[arg(long, value_name = "GIT_REV")]
    pub against: Option<String>,
}
