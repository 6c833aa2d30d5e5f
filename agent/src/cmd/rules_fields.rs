//! `auditloop rules fields`: the field reference as a Markdown table (the one in `docs/rules.md`).

use crate::rules::fields::FIELDS;

/// The Markdown table of every rule field.
pub fn table() -> String {
    let mut out = String::from("| field | type | event kinds | meaning |\n|---|---|---|---|\n");
    for f in FIELDS {
        let name = if f.indexed {
            format!("{}[N]", f.name)
        } else {
            f.name.to_owned()
        };
        let kinds = if f.kinds.is_empty() {
            "all".to_owned()
        } else {
            f.kinds.join(", ")
        };
        out.push_str(&format!(
            "| `{name}` | {} | {kinds} | {} |\n",
            f.ty.describe()
                .trim_start_matches("a ")
                .trim_start_matches("an "),
            f.doc.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_list_every_field() {
        let docs =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/rules.md"))
                .unwrap();
        assert!(
            docs.contains(&table()),
            "docs/rules.md is out of date: run `auditloop rules fields` and paste the table"
        );
    }
}
