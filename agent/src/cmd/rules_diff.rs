//! `auditloop rules diff OLD NEW --journal DIR`: replays history through both rule sets and reports the
//! alerts a change adds and removes, per rule, so CI can gate it (exit 1 when alerts were added).

use std::path::Path;
use std::process::ExitCode;

use auditloop_learn::Differ;
use auditloop_rules::RuleSet;

use crate::cli::DiffArgs;
use crate::cmd::rules_test::{Source, events, verified};

/// Exit status when the new rules add alerts.
pub const EXIT_ADDED: u8 = 1;
/// Exit status of a usage error.
pub const EXIT_USAGE: u8 = 2;

fn load(path: &Path) -> Result<RuleSet, ExitCode> {
    if !path.exists() {
        eprintln!(
            "auditloop rules diff: {}: no such file or directory",
            path.display()
        );
        return Err(ExitCode::from(EXIT_USAGE));
    }
    RuleSet::load_resolving(path, &crate::enforce::canonical_literal).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(EXIT_USAGE)
    })
}

/// Runs the diff and prints the report.
pub fn run(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let (old, new) = match (load(&args.old), load(&args.new)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(code), _) | (_, Err(code)) => return Ok(code),
    };
    let source = match &args.events {
        Some(file) => Source::Events(file),
        None => {
            if let Err(why) = verified(&args.journal) {
                eprintln!("auditloop rules diff: {why}");
                return Ok(ExitCode::from(EXIT_USAGE));
            }
            Source::Journal(&args.journal)
        }
    };
    let replay = match events(&source, args.window) {
        Ok(replay) => replay,
        Err(e) => {
            eprintln!("auditloop rules diff: {e:#}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let mut differ = Differ::new(&old, &new, args.examples);
    for event in replay {
        match event {
            Ok(event) => differ.observe("", &event),
            Err(e) => {
                eprintln!("auditloop rules diff: {e:#}");
                return Ok(ExitCode::from(EXIT_USAGE));
            }
        }
    }
    let report = differ.finish();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(if report.added > 0 {
        ExitCode::from(EXIT_ADDED)
    } else {
        ExitCode::SUCCESS
    })
}
