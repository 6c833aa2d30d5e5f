//! `auditloop verify`: checks a journal and names the first bad record; says what a clean journal does not
//! prove (a long unsigned tail, a missing or inconsistent `HEAD`, keys not traced to a genesis key) and
//! never claims a trust it did not check.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use auditloop_journal::{
    Damage, HeadState, Report, Trust, Unproven, VerifyOptions, keys::parse_public_key, verify,
};

use crate::cli::VerifyArgs;

/// Exit status of a damaged journal.
pub const EXIT_TAMPERED: u8 = 1;
/// Exit status of a usage error (missing directory, unreadable key file).
pub const EXIT_USAGE: u8 = 2;
/// Exit status of a journal whose chain verifies but does not prove its tail: the records after the last
/// checkpoint span more than `--max-unsigned-secs`, or `HEAD` is missing or behind the last checkpoint.
pub const EXIT_UNPROVEN: u8 = 3;

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
    let unproven = if report.is_clean() {
        report.unproven(args.max_unsigned_secs)
    } else {
        Vec::new()
    };
    let (code, verdict) = match (&report.problem, unproven.is_empty()) {
        (Some(_), _) => (EXIT_TAMPERED, "failed"),
        (None, false) => (EXIT_UNPROVEN, "unproven"),
        (None, true) => (0, "ok"),
    };
    if args.json {
        let json = JsonReport {
            report: &report,
            verdict,
            max_unsigned_secs: args.max_unsigned_secs,
            unproven: &unproven,
        };
        println!("{}", serde_json::to_string(&json)?);
    } else {
        print_text(&report, &unproven, args.max_unsigned_secs);
    }
    Ok(ExitCode::from(code))
}

/// `--json` output: the report and what it does not prove.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    report: &'a Report,
    /// `ok` (exit 0), `unproven` (exit 3) or `failed` (exit 1).
    verdict: &'static str,
    max_unsigned_secs: f64,
    unproven: &'a [Unproven],
}

fn print_text(report: &Report, unproven: &[Unproven], max_unsigned_secs: f64) {
    if let Some(p) = &report.problem {
        let label = match p.damage {
            Damage::UntrustedKey => "UNTRUSTED",
            Damage::UntracedKey => "UNTRACED",
            _ => "TAMPERED",
        };
        println!(
            "{label}: {:?} in {} at offset {} (expected seq {}): {}",
            p.damage, p.segment, p.offset, p.seq, p.detail
        );
        return;
    }
    let summary = format!(
        "{} records ({} events, {} checkpoints) in {} segments, seq {}..={}",
        report.records,
        report.events,
        report.checkpoints,
        report.segments,
        report.first_seq,
        report.last_seq,
    );
    if unproven.is_empty() {
        println!("OK: {summary}");
    } else {
        println!("UNPROVEN: {summary} verify, but:");
        for reason in unproven {
            println!("  {reason}");
        }
    }
    println!(
        "signed through seq {}; {} records after the last checkpoint, spanning {:.1} s (limit {max_unsigned_secs} s)",
        report.last_checkpoint_seq, report.unsigned_tail, report.unsigned_tail_secs
    );
    match (report.head, report.head_seq) {
        (Some(HeadState::Ok), Some(seq)) => println!("HEAD: ok (seq {seq})"),
        (Some(HeadState::Behind), Some(seq)) => println!(
            "HEAD: behind (seq {seq}; the records after it were written after the last sync)"
        ),
        (Some(HeadState::Missing), _) => println!("HEAD: missing or unreadable"),
        (state, seq) => println!("HEAD: {state:?} (seq {seq:?})"),
    }
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
    let through = if report.ladder_links > 0 {
        format!(
            ", through {} key ladder links to ANCHOR's key {} (retained start seq {})",
            report.ladder_links, report.public_key, report.first_seq
        )
    } else {
        String::new()
    };
    match report.trust {
        Some(Trust::TrustedKey) => println!(
            "signatures verified from the trusted key {}{through}",
            report.genesis_public_key
        ),
        Some(Trust::OwnGenesis) => println!(
            "signatures verified from the journal's own genesis key {}{through} (pass --pubkey to check authorship)",
            report.genesis_public_key
        ),
        Some(Trust::Untraced) => println!(
            "TRUST NOT TRACED: signatures verified from ANCHOR's key {} only, which is not traced to any genesis key",
            report.public_key
        ),
        None => println!("no signatures to verify"),
    }
    if let Some(note) = &report.trust_note {
        println!("note: {note}");
    }
}
