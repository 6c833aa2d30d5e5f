//! The `auditloop` binary: wires the stages together; the logic lives in the modules.

use std::process::ExitCode;

use auditloop::{cli, cmd, run};
use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUDITLOOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // Under systemd the journal stamps every line itself: no second timestamp, no colour codes.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        logs.without_time().with_ansi(false).init();
    } else {
        logs.init();
    }
    let result = match cli.command {
        cli::Command::Run(args) => run::run(args),
        cli::Command::Verify(args) => cmd::verify::run(&args),
        cli::Command::Export(args) => cmd::export::run(&args).map(|()| ExitCode::SUCCESS),
        cli::Command::Rules(cli::RulesCommand::Check { paths }) => cmd::rules::check(&paths),
        cli::Command::Rules(cli::RulesCommand::Fields) => {
            print!("{}", cmd::rules_fields::table());
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Rules(cli::RulesCommand::Test {
            rules,
            journal,
            events,
            window,
        }) => {
            let source = match &events {
                Some(file) => cmd::rules_test::Source::Events(file),
                None => cmd::rules_test::Source::Journal(&journal),
            };
            cmd::rules_test::run(&rules, source, window)
        }
        cli::Command::Rules(cli::RulesCommand::Diff(args)) => cmd::rules_diff::run(&args),
        cli::Command::Learn(args) => cmd::learn::run(&args),
        cli::Command::Drill(args) => cmd::drill::run(&args),
        cli::Command::Status(args) => cmd::status::run(&args),
        cli::Command::Holds(args) => cmd::holds::run(&args),
        cli::Command::Enroll(args) => cmd::enroll::run(&args).map(|()| ExitCode::SUCCESS),
        cli::Command::Key(cli::KeyCommand::Show { state_dir }) => {
            cmd::key::show(&state_dir).map(|()| ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("auditloop: error: {err:#}");
            ExitCode::from(1)
        }
    }
}
