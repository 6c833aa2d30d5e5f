//! `auditloop rules test FILE --journal DIR`: replays recorded events through rules and prints which rules
//! would have fired, to tune rules on real history before enforcing them.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use auditloop_model::Event;
use std::process::ExitCode;

use auditloop_journal::{Payload, reader::Reader};

use auditloop_rules::RuleSet;

use crate::cli::Window;

/// Where the replayed events come from.
pub enum Source<'a> {
    /// A journal directory.
    Journal(&'a Path),
    /// JSON lines of events (`-`: stdin).
    Events(&'a Path),
}

/// Checks the journal at `dir` before history is learned from or judged by it: a journal whose chain does
/// not verify (a record changed, removed or inserted) is refused, naming the first problem, so tampered
/// history never becomes a baseline or a verdict. `auditloop verify` says more.
pub fn verified(dir: &Path) -> Result<(), String> {
    let opts = auditloop_journal::verify::VerifyOptions {
        trusted_public_key: None,
        deep: false,
    };
    let report = auditloop_journal::verify::verify(dir, &opts, &mut |_, _| {})
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    match report.problem {
        None => Ok(()),
        Some(p) => Err(format!(
            "{}: the journal does not verify: {:?} in {} at offset {} (seq {}): {}; run `auditloop verify \
             {}`",
            dir.display(),
            p.damage,
            p.segment,
            p.offset,
            p.seq,
            p.detail,
            dir.display()
        )),
    }
}

/// The events of `source` in `window`, in order.
pub fn events(
    source: &Source<'_>,
    window: Window,
) -> anyhow::Result<Box<dyn Iterator<Item = anyhow::Result<Event>>>> {
    let all = all_events(source)?;
    Ok(Box::new(all.filter(move |e| {
        e.as_ref().map_or(true, |e| window.holds(e.time))
    })))
}

/// The events of `source`, in order.
fn all_events(
    source: &Source<'_>,
) -> anyhow::Result<Box<dyn Iterator<Item = anyhow::Result<Event>>>> {
    match source {
        Source::Journal(dir) => {
            let reader = Reader::open(dir)?;
            Ok(Box::new(reader.filter_map(|r| match r {
                Ok(record) => match record.payload {
                    Payload::Event(e) => Some(Ok(e)),
                    Payload::SegmentStart(_) | Payload::Checkpoint(_) => None,
                },
                Err(e) => Some(Err(e.into())),
            })))
        }
        Source::Events(path) => {
            let name = path.display().to_string();
            let input: Box<dyn BufRead> = if path.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::io::BufReader::new(
                    std::fs::File::open(path).with_context(|| format!("opening {name}"))?,
                ))
            };
            Ok(Box::new(input.lines().enumerate().filter_map(
                move |(i, line)| {
                    let line = match line {
                        Ok(line) => line,
                        Err(e) => return Some(Err(anyhow::anyhow!("{name}:{}: {e}", i + 1))),
                    };
                    if line.trim().is_empty() {
                        return None;
                    }
                    Some(serde_json::from_str::<Event>(&line).map_err(|e| {
                        anyhow::anyhow!("{name}:{}:{}: not an event: {e}", i + 1, e.column())
                    }))
                },
            )))
        }
    }
}

/// Replays the events of `source` through the rules at `rules`.
pub fn run(rules: &Path, source: Source<'_>, window: Window) -> anyhow::Result<ExitCode> {
    let set = match RuleSet::load_resolving(rules, &crate::enforce::canonical_literal) {
        Ok(set) => set,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut fired: BTreeMap<String, u64> = set
        .rules()
        .iter()
        .map(|r| (r.name().to_owned(), 0))
        .collect();
    let mut state = set.new_state();
    let mut replayed = 0u64;
    for event in events(&source, window)? {
        let event = event?;
        replayed += 1;
        for rule in set.fire(&mut state, &event) {
            *fired.entry(rule.name().to_owned()).or_default() += 1;
            println!(
                "{} seq={} {} [{}] {}",
                event.time,
                event.seq,
                rule.name(),
                rule.severity().as_str(),
                rule.render_output(&event)
            );
        }
    }
    eprintln!("{replayed} events replayed; alerts per rule, noisiest first:");
    let mut counts: Vec<(&String, &u64)> = fired.iter().collect();
    counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (rule, n) in counts {
        let never = if *n == 0 { "  (never fired)" } else { "" };
        eprintln!("  {n:>8}  {rule}{never}");
    }
    Ok(ExitCode::SUCCESS)
}
