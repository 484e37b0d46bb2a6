//! The `upshift` binary: parse arguments, run, exit with the code DESIGN.md promises.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = upshift::Cli::parse();
    std::process::ExitCode::from(upshift::run(cli).code())
}
