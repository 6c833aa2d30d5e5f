//! `auditloop rules fields`: the field reference as a Markdown table (the one in `docs/rules.md`).

pub use auditloop_rules::fields::markdown_table as table;

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
