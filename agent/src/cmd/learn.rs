//! `auditloop learn --journal DIR`: builds the host's baseline from a journal window, proposes alert-only
//! rules that flag departures from it, and proves the proposal by replaying the window through it: a
//! baseline is not an anomaly, so any alert there is reported (exit 1) with the events that raised it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use auditloop_learn::{Learner, Options, Proposal, propose};
use auditloop_rules::RuleSet;

use crate::cli::LearnArgs;
use crate::cmd::rules_test::{Source, events, verified};
use crate::config::{Config, DEFAULT_CONFIG_PATH};

/// Exit status when the window raised alerts on the proposal.
pub const EXIT_NOT_SILENT: u8 = 1;
/// Exit status of a usage error.
pub const EXIT_USAGE: u8 = 2;

fn usage(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("auditloop learn: {message}");
    Ok(ExitCode::from(EXIT_USAGE))
}

/// The config paths: `/etc/`, the config's watched paths (directories as `dir/`), and `extra`.
fn config_paths(config: &Path, extra: &[String]) -> Result<Vec<String>, String> {
    let mut paths = vec!["/etc/".to_owned()];
    let watched = if config.exists() {
        let config = Config::load(config).map_err(|e| e.to_string())?;
        config.watch.paths
    } else if config == Path::new(DEFAULT_CONFIG_PATH) {
        crate::watch::WatchList::default_paths()
    } else {
        return Err(format!("{}: no such file or directory", config.display()));
    };
    for path in watched.iter().map(PathBuf::as_path) {
        let text = path.display().to_string();
        let entry = if path.is_dir() && !text.ends_with('/') {
            format!("{text}/")
        } else {
            text
        };
        paths.push(entry);
    }
    for p in extra {
        if !p.starts_with('/') {
            return Err(format!("--config-path {p}: must be an absolute path"));
        }
        paths.push(p.clone());
    }
    paths.sort();
    paths.dedup();
    // An entry inside a directory entry adds nothing.
    let dirs: Vec<String> = paths.iter().filter(|p| p.ends_with('/')).cloned().collect();
    paths.retain(|p| !dirs.iter().any(|d| d != p && p.starts_with(d.as_str())));
    Ok(paths)
}

/// Replays the window through the proposal: the alerts it raises, as report lines (empty: silent).
fn replay(set: &RuleSet, source: &Source<'_>, args: &LearnArgs) -> anyhow::Result<Vec<String>> {
    let mut state = set.new_state();
    let mut out = Vec::new();
    for event in events(source, args.window)? {
        let event = event?;
        for rule in set.fire(&mut state, &event) {
            out.push(format!(
                "{} seq={} {}: {}",
                event.time,
                event.seq,
                rule.name(),
                rule.render_output(&event)
            ));
        }
    }
    Ok(out)
}

/// Writes `text` to `path` atomically (a temporary file in the same directory, renamed over it).
fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)?;
    Ok(())
}

fn summary(proposal: &Proposal) {
    eprintln!("{} rules proposed:", proposal.rules.len());
    for r in &proposal.rules {
        eprintln!(
            "  {:<48} {:>8} events  {:>4} normal values  {}",
            r.name,
            r.support,
            r.values,
            r.subjects.join(", ")
        );
    }
    if !proposal.skipped.is_empty() {
        eprintln!("left out:");
        for s in &proposal.skipped {
            eprintln!("  {}: {}", s.subject, s.why);
        }
    }
}

/// Runs `auditloop learn`.
pub fn run(args: &LearnArgs) -> anyhow::Result<ExitCode> {
    let config_paths = match config_paths(&args.config, &args.config_paths) {
        Ok(paths) => paths,
        Err(e) => return usage(e),
    };
    if let (Some(since), Some(until)) = (args.window.since, args.window.until)
        && since >= until
    {
        return usage(format!("--since {since} is not before --until {until}"));
    }
    let options = Options {
        config_paths,
        min_starts: args.min_starts,
        max_programs: args.max_programs,
        ..Options::default()
    };
    if let Err(why) = verified(&args.journal) {
        return usage(why);
    }
    let source = Source::Journal(&args.journal);
    let mut learner = Learner::new(options.clone());
    let replayed = match events(&source, args.window) {
        Ok(replayed) => replayed,
        Err(e) => return usage(format!("{e:#}")),
    };
    for event in replayed {
        match event {
            Ok(event) => learner.observe(&event),
            Err(e) => return usage(format!("{}: {e:#}", args.journal.display())),
        }
    }
    let baseline = learner.finish();
    if baseline.events == 0 {
        eprintln!(
            "auditloop learn: warning: no events in {} for this window; every departure rule will fire on \
             anything it judges",
            args.journal.display()
        );
    }
    let proposal = propose(&baseline, &options);
    let name = args
        .out
        .as_ref()
        .map_or_else(|| "learned.yaml".to_owned(), |p| p.display().to_string());
    let set =
        match RuleSet::parse_resolving(&name, &proposal.yaml, &crate::enforce::canonical_literal) {
            Ok(set) => set,
            Err(errors) => {
                // A proposal that does not compile is a defect here, not the user's: say so plainly.
                eprintln!(
                    "auditloop learn: the proposal does not compile (please report):\n{errors}"
                );
                return Ok(ExitCode::from(EXIT_NOT_SILENT));
            }
        };
    let alerts = match replay(&set, &source, args) {
        Ok(alerts) => alerts,
        Err(e) => return usage(format!("{}: {e:#}", args.journal.display())),
    };
    match &args.out {
        Some(path) => {
            if let Err(e) = write_atomic(path, &proposal.yaml) {
                return usage(format!("cannot write {}: {e:#}", path.display()));
            }
        }
        None => print!("{}", proposal.yaml),
    }
    summary(&proposal);
    eprintln!(
        "learned from {} events of {}; replaying them through the proposal raised {} alerts",
        baseline.events,
        args.journal.display(),
        alerts.len()
    );
    if args.json {
        let doc = serde_json::json!({
            "journal": args.journal.display().to_string(),
            "baseline": baseline,
            "rules": proposal.rules,
            "skipped": proposal.skipped,
            "window_alerts": alerts.len(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    if alerts.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for line in alerts.iter().take(20) {
        eprintln!("  {line}");
    }
    Ok(ExitCode::from(EXIT_NOT_SILENT))
}
