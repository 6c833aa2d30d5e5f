//! Tests of the rules stage's error reporting: every error names `file:line:col`, shows the line with a
//! caret under the offending token and, where it helps, a hint.

use crate::tests::{errors, exec, first_error};
use crate::{ErrorKind, RuleSet};

#[test]
fn macro_and_list_cycles_are_errors() {
    let e = errors(
        "- macro: a\n  condition: b and evt.kind = exec\n- macro: b\n  condition: a\n\
         - rule: r\n  condition: a\n  output: o\n",
    );
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].kind, ErrorKind::Cycle);
    assert_eq!(e.0[0].message, "macro cycle: a -> b -> a");
    assert_eq!((e.0[0].line, e.0[0].col), (4, 14));
    let e = errors("- list: x\n  items: [y]\n- list: y\n  items: [x]\n");
    assert_eq!(e.0[0].kind, ErrorKind::Cycle);
    assert_eq!(e.0[0].message, "list cycle: x -> y -> x");
    assert_eq!(e.0[0].location(), "rules.yaml:1:9");
}

#[test]
fn error_unknown_field_with_hint() {
    let text =
        "- rule: r\n  desc: d\n  condition: evt.kind = exec and proc.nmae = bash\n  output: o\n";
    assert_eq!(
        first_error(text),
        "rules.yaml:3:34: unknown field `proc.nmae`\n\
         \x20     condition: evt.kind = exec and proc.nmae = bash\n\
         \x20                                    ^^^^^^^^^\n\
         hint: did you mean `proc.name`?"
    );
}

#[test]
fn error_unknown_macro() {
    let text = "- macro: from_server\n  condition: proc.pname = nginx\n\
                - rule: r\n  condition: evt.kind = exec and from_servr\n  output: o\n";
    assert_eq!(
        first_error(text),
        "rules.yaml:4:34: unknown macro `from_servr`\n\
         \x20     condition: evt.kind = exec and from_servr\n\
         \x20                                    ^^^^^^^^^^\n\
         hint: did you mean `from_server`?"
    );
}

#[test]
fn error_type_mismatch() {
    let text = "- rule: r\n  condition: proc.pid = abc\n  output: o\n";
    assert_eq!(
        first_error(text),
        "rules.yaml:2:25: type mismatch: `proc.pid` is a number, `abc` is not\n\
         \x20     condition: proc.pid = abc\n\
         \x20                           ^^^\n\
         hint: compare `proc.pid` with a number such as 1000"
    );
    let e = errors("- rule: r\n  condition: proc.name > 3\n  output: o\n");
    assert_eq!(
        (e.0[0].kind, e.0[0].col, e.0[0].width),
        (ErrorKind::TypeMismatch, 24, 1)
    );
    let e = errors("- rule: r\n  condition: evt.kind = exce\n  output: o\n");
    assert_eq!(e.0[0].hint.as_deref(), Some("did you mean `exec`?"));
}

#[test]
fn error_bad_regex() {
    let text = "- rule: r\n  condition: \"proc.cmdline regex '(abc'\"\n  output: o\n";
    let e = errors(text);
    let msg = e.0[0].to_string();
    assert!(
        msg.starts_with(
            "rules.yaml:2:34: invalid regular expression `(abc`\n\
             \x20     condition: \"proc.cmdline regex '(abc'\"\n\
             \x20                                    ^^^^^^\n\
             hint: regex parse error:"
        ),
        "{msg}"
    );
    assert!(msg.contains("unclosed group"), "{msg}");
    assert_eq!(e.0[0].kind, ErrorKind::BadRegex);
}

#[test]
fn error_unterminated_string() {
    let text = "- rule: r\n  condition: proc.name = \"bash\n  output: o\n";
    let e = errors(text);
    // The YAML scalar itself is fine (`proc.name = "bash`); the condition's string is not.
    assert_eq!(
        e.0[0].to_string(),
        "rules.yaml:2:26: unterminated string\n\
         \x20     condition: proc.name = \"bash\n\
         \x20                            ^^^^^"
    );
}

#[test]
fn error_duplicate_rule_names_both_places() {
    let text = "- rule: r\n  condition: evt.kind = exec\n  output: o\n- rule: r\n  condition: evt.kind = fork\n  output: o\n";
    assert_eq!(
        first_error(text),
        "rules.yaml:4:9: duplicate rule `r`\n    - rule: r\n            ^\nhint: first defined at rules.yaml:1:9"
    );
}

#[test]
fn error_yaml_syntax() {
    let e = errors("- rule: r\n  condition: [evt.kind\n  output: o\n");
    assert_eq!(e.0[0].kind, ErrorKind::Yaml);
    assert_eq!(e.0[0].location(), "rules.yaml:3:9", "{}", e.0[0]);
    assert!(
        e.0[0].message.starts_with("YAML syntax error: "),
        "{}",
        e.0[0]
    );
    let e = errors("- rule: r\n\tcondition: x\n");
    assert_eq!(e.0[0].location(), "rules.yaml:2:1", "{}", e.0[0]);
}

#[test]
fn errors_in_block_and_multiline_scalars_point_into_the_file() {
    let text =
        "- rule: r\n  condition: |\n    evt.kind = exec\n      and proc.nmae = x\n  output: o\n";
    assert_eq!(errors(text).0[0].location(), "rules.yaml:4:11");
    let text =
        "- rule: r\n  condition: >-\n    evt.kind = exec\n    and proc.nmae = x\n  output: o\n";
    assert_eq!(errors(text).0[0].location(), "rules.yaml:4:9");
    let text = "- rule: r\n  condition: evt.kind = exec\n    and proc.nmae = x\n  output: o\n";
    assert_eq!(errors(text).0[0].location(), "rules.yaml:3:9");
    let text = "- rule: r\n  condition: 'proc.name = ''x'' and proc.nmae = x'\n  output: o\n";
    assert_eq!(errors(text).0[0].location(), "rules.yaml:2:37");
    // Flow style cannot be mapped: the error points at the item.
    let text = "- {rule: r, condition: proc.nmae = x, output: o}\n";
    assert_eq!(errors(text).0[0].location(), "rules.yaml:1:1");
}

#[test]
fn schema_errors_collect_and_hint() {
    let e = errors(
        "- rule: r\n  condtion: evt.kind = exec\n  output: o\n  severity: loud\n  actions: [explode]\n- nope: 1\n",
    );
    let shown: Vec<String> =
        e.0.iter()
            .map(|e| format!("{} {}", e.location(), e.message))
            .collect();
    assert_eq!(
        shown,
        vec![
            "rules.yaml:1:1 missing key `condition`",
            "rules.yaml:2:3 unknown key `condtion`",
            "rules.yaml:4:13 unknown severity `loud`",
            "rules.yaml:5:12 unknown action `explode`",
            "rules.yaml:6:1 item has none of the keys `rule`, `macro`, `list`",
        ]
    );
    assert_eq!(e.0[1].hint.as_deref(), Some("did you mean `condition`?"));
    assert!(e.to_string().ends_with("5 errors in rules"));
}

#[test]
fn directory_load_shares_lists_and_reports_duplicates_across_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("00-lists.yaml"),
        "- list: shells\n  items: [bash, sh]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("10-rules.yml"),
        "- rule: shell\n  condition: evt.kind = exec and proc.name in (shells)\n  output: o\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
    let set = RuleSet::load(dir.path()).unwrap();
    assert_eq!(set.matches(&exec("/bin/sh", &["sh"])).count(), 1);

    let second = dir.path().join("20-more.yaml");
    std::fs::write(
        &second,
        "- rule: shell\n  condition: evt.kind = fork\n  output: o\n",
    )
    .unwrap();
    let e = RuleSet::load(dir.path()).unwrap_err();
    assert_eq!(e.0[0].location(), format!("{}:1:9", second.display()));
    let first = dir.path().join("10-rules.yml");
    assert_eq!(
        e.0[0].hint,
        Some(format!("first defined at {}:1:9", first.display()))
    );
    let missing = RuleSet::load(&dir.path().join("missing.yaml")).unwrap_err();
    assert_eq!(missing.0[0].kind, ErrorKind::Io);
}

#[test]
fn error_bad_glob_and_bit_test_on_string() {
    let e = errors("- rule: r\n  condition: file.path glob '/tmp/[a'\n  output: o\n");
    assert_eq!(
        (e.0[0].kind, e.0[0].location()),
        (ErrorKind::BadGlob, "rules.yaml:2:29".to_string())
    );
    assert_eq!(e.0[0].width, 9);
    let e = errors("- rule: r\n  condition: file.path & 4\n  output: o\n");
    assert_eq!((e.0[0].kind, e.0[0].col), (ErrorKind::TypeMismatch, 24));
    let e = errors("- rule: r\n  condition: file.mode & 04000\n  output: o\n");
    assert!(
        e.0[0].hint.as_deref().is_some_and(|h| h.contains("0o4000")),
        "{e}"
    );
}

#[test]
fn error_value_outside_a_fields_vocabulary() {
    let e = errors(
        "- rule: r\n  condition: evt.kind = file and file.op in (open, opne)\n  output: o\n",
    );
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].kind, ErrorKind::TypeMismatch);
    assert_eq!(e.0[0].message, "`file.op` is never `opne`");
    assert_eq!(e.0[0].hint.as_deref(), Some("did you mean `open`?"));
    assert_eq!((e.0[0].line, e.0[0].col), (2, 52));
    // Free-form text fields take any value.
    assert!(
        RuleSet::parse(
            "r.yaml",
            "- rule: r\n  condition: file.path = opne\n  output: o\n"
        )
        .is_ok()
    );
}
