//! `auditloop rules check`: parse and check rules, say how each is enforced.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::enforce;

/// Checks every path; prints errors (with `file:line:col`) or the rules and their enforcement path.
pub fn check(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    let features = crate::capture::features::Features::probe();
    let tier = features
        .tier(crate::config::CaptureMode::Auto)
        .unwrap_or(enforce::Tier::Tracepoint);
    println!(
        "this kernel ({}): enforcement tier {} ({})",
        features.kernel,
        tier.as_str(),
        features.summary()
    );
    for path in paths {
        if !path.exists() {
            ok = false;
            eprintln!("{}: no such file or directory", path.display());
            continue;
        }
        match enforce::load(path, tier) {
            Ok(loaded) => {
                println!(
                    "{}: {} rules OK",
                    path.display(),
                    loaded.rules.rules().len()
                );
                for rule in loaded.rules.rules() {
                    let state = if rule.enabled() { "" } else { " (disabled)" };
                    println!("  {}{state}: {}", rule.name(), enforce::path_of(rule, tier));
                }
                for r in loaded.rules.path_rewrites() {
                    println!(
                        "  note: {}: `{}` is matched as {}, its canonical path on this host (events \
                         carry canonical paths)",
                        r.at, r.literal, r.canonical
                    );
                }
            }
            Err(errors) => {
                ok = false;
                eprintln!("{errors}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
