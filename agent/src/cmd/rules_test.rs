//! `auditloop rules test FILE --journal DIR`: replays recorded events through rules and prints which rules
//! would have fired, to tune rules on real history before enforcing them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use auditloop_journal::{Payload, reader::Reader};

use auditloop_rules::RuleSet;

/// Replays the journal at `journal` through the rules at `rules`.
pub fn run(rules: &Path, journal: &Path) -> anyhow::Result<ExitCode> {
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
    let mut events = 0u64;
    for record in Reader::open(journal)? {
        let Payload::Event(event) = record?.payload else {
            continue;
        };
        events += 1;
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
    eprintln!("{events} events replayed");
    for (rule, n) in &fired {
        eprintln!("  {n:>8}  {rule}");
    }
    Ok(ExitCode::SUCCESS)
}
