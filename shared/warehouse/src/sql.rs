//! SQL text shared by the dialects: quoted identifiers and literals, and the
//! column lists every statement names, all taken from the one row schema
//! (`mdp_core::schema`).

use mdp_core::schema::{self, Column};

/// A double-quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal. Callers pass identifiers checked by the
/// configuration, tickers, migration names and S3 URIs without backslashes
/// (checked in [`crate::redshift`]), so doubling quotes is all it takes under
/// both Postgres' and Redshift's literal rules.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `"a", "b", ...` with `prefix` before each name (e.g. `t.`).
pub(crate) fn column_list<'a>(
    columns: impl IntoIterator<Item = &'a Column>,
    prefix: &str,
) -> String {
    columns
        .into_iter()
        .map(|c| format!("{prefix}{}", quote_ident(c.name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every column of the schema, in order.
pub(crate) fn all_columns(prefix: &str) -> String {
    column_list(&schema::MARKET_DATA, prefix)
}

/// The columns whose change makes a load rewrite a row.
pub(crate) fn compared_columns(prefix: &str) -> String {
    column_list(schema::compared_columns(), prefix)
}

/// `"c" = <source>."c"` for every column an update sets.
pub(crate) fn update_assignments(source: &str) -> String {
    schema::updated_columns()
        .map(|c| format!("{0} = {source}.{0}", quote_ident(c.name)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_follow_the_schema() {
        assert!(all_columns("").starts_with("\"ticker\", \"date\", \"open\""));
        assert!(all_columns("t.").ends_with("t.\"created_at\", t.\"updated_at\""));
        let compared = compared_columns("");
        assert!(compared.starts_with("\"open\"") && compared.ends_with("\"short_name\""));
        assert_eq!(compared.matches(", ").count() + 1, 28);
        let sets = update_assignments("EXCLUDED");
        assert_eq!(sets.matches(" = EXCLUDED.").count(), 29);
        assert!(sets.ends_with("\"updated_at\" = EXCLUDED.\"updated_at\""));
        assert!(!sets.contains("created_at") && !sets.contains("\"ticker\" ="));
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
