//! Comparisons of two fields of one event (`user.loginuid != user.uid`): evaluation, absent sides,
//! quoting to keep a literal, and the errors for types, lists and operators.

use auditloop_model::{EventBody, Exec};

use crate::ErrorKind;
use crate::tests::{errors, exec, holds};

#[test]
fn two_fields_of_one_event_compare() {
    let mut ev = exec("/usr/bin/id", &["id"]);
    ev.process.uid = 0;
    ev.process.euid = 0;
    ev.process.loginuid = Some(1000);
    for (cond, want) in [
        ("user.loginuid != user.uid", true),
        ("user.loginuid = user.uid", false),
        ("user.loginuid > user.uid", true),
        ("user.uid <= user.euid", true),
        ("user.uid < user.euid", false),
        ("proc.name = proc.name", true),
        ("proc.name != proc.pname", true),
        ("proc.pid = proc.apid[1]", false),
        ("proc.ppid = proc.apid[1]", true),
        ("exec.success = exec.success", true),
        // Quoted, it is the text.
        ("proc.name != 'proc.name'", true),
        ("not user.loginuid = user.uid", true),
    ] {
        assert_eq!(holds(cond, &ev), want, "{cond}");
    }
    // An absent side makes every comparison false, `!=` included.
    ev.process.loginuid = None;
    assert!(!holds("user.loginuid != user.uid", &ev));
    assert!(!holds("user.loginuid = user.uid", &ev));
    let EventBody::Exec(e) = &mut ev.event else {
        unreachable!()
    };
    *e = Exec::default();
    assert!(!holds("file.path = exec.filename", &ev));
}

#[test]
fn field_comparison_errors() {
    let e = errors("- rule: r\n  condition: user.uid = proc.name\n  output: o\n");
    assert_eq!(e.0[0].kind, ErrorKind::TypeMismatch, "{e}");
    assert_eq!(
        e.0[0].message,
        "type mismatch: `user.uid` is a number and `proc.name` is a string"
    );
    assert_eq!((e.0[0].line, e.0[0].col), (2, 25));
    let e = errors("- rule: r\n  condition: proc.ancestors = proc.name\n  output: o\n");
    assert!(e.0[0].message.contains("is a list"), "{e}");
    let e = errors("- rule: r\n  condition: proc.name != proc.ancestors\n  output: o\n");
    assert!(e.0[0].message.contains("`proc.ancestors` is a list"), "{e}");
    let e = errors("- rule: r\n  condition: proc.name > proc.pname\n  output: o\n");
    assert!(
        e.0[0].message.contains("does not compare two fields"),
        "{e}"
    );
    let e = errors("- rule: r\n  condition: proc.pid = proc.apid[0]\n  output: o\n");
    assert!(e.0[0].message.contains("indexes start at 1"), "{e}");
    // A word that is not a field stays a literal (and must fit the type).
    let e = errors("- rule: r\n  condition: user.uid = user.nope\n  output: o\n");
    assert!(e.0[0].message.contains("is a number"), "{e}");
}
