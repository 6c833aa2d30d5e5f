//! Fuzz target: the rules file loader (YAML items, condition lexer and parser, checker) on arbitrary text.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = auditloop_rules::RuleSet::parse("fuzz.yaml", text);
        // Conditions are the most intricate part: also feed the text as one rule's condition.
        let rule = format!("- rule: r\n  desc: d\n  condition: {}\n  output: o\n", text.replace('\n', " "));
        let _ = auditloop_rules::RuleSet::parse("fuzz.yaml", &rule);
    }
});
