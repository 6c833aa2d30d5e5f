//! `auditloop verify`: checks a journal and names the first bad record.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use auditloop_journal::{Report, VerifyOptions, keys::parse_public_key, verify};

use crate::cli::VerifyArgs;

/// Exit status of a damaged journal.
pub const EXIT_TAMPERED: u8 = 1;
/// Exit status of a usage error (missing directory, unreadable key file).
pub const EXIT_USAGE: u8 = 2;

/// Runs the verification and prints the report.
pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    if !args.dir.is_dir() {
        eprintln!(
            "auditloop verify: {}: not a journal directory",
            args.dir.display()
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let trusted_public_key = match &args.pubkey {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()));
            match text
                .map_err(|e| e.to_string())
                .and_then(|t| parse_public_key(&t).map_err(|e| e.to_string()))
            {
                Ok(key) => Some(key),
                Err(why) => {
                    eprintln!("auditloop verify: --pubkey {}: {why}", path.display());
                    return Ok(ExitCode::from(EXIT_USAGE));
                }
            }
        }
        None => None,
    };
    let opts = VerifyOptions {
        trusted_public_key,
        deep: args.deep,
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let report = verify(&args.dir, &opts, &mut |done, total| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_text(&report, opts.trusted_public_key.is_some());
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_TAMPERED)
    })
}

fn print_text(report: &Report, trusted: bool) {
    match &report.problem {
        None => {
            println!(
                "OK: {} records ({} events, {} checkpoints) in {} segments, seq {}..={}; {} records after the last checkpoint",
                report.records,
                report.events,
                report.checkpoints,
                report.segments,
                report.first_seq,
                report.last_seq,
                report.unsigned_tail
            );
            if let Some(segment) = &report.interrupted_start {
                println!(
                    "{segment} holds no complete record: a start was interrupted before it journaled \
                     anything (not damage; the agent removes it at its next start)"
                );
            }
            if let Some(tail) = &report.torn_tail {
                println!(
                    "the last record is cut short ({tail}): a write interrupted by a crash, beyond what \
                     HEAD says is durable (not damage; the agent cuts it at its next start)"
                );
            }
            if trusted {
                println!(
                    "signatures verified from the trusted key {}",
                    report.public_key
                );
            } else {
                println!(
                    "signatures verified from the journal's own genesis key {} (pass --pubkey to check authorship)",
                    report.public_key
                );
            }
        }
        Some(p) => println!(
            "TAMPERED: {:?} in {} at offset {} (expected seq {}): {}",
            p.damage, p.segment, p.offset, p.seq, p.detail
        ),
    }
}
