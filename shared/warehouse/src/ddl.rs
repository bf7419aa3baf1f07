//! The table DDL of `infra/warehouse/`, with its placeholders substituted.

const POSTGRES: &str =
    include_str!("../../../infra/warehouse/postgres/001_create_fact_market_data.sql");
const SQLITE: &str =
    include_str!("../../../infra/warehouse/sqlite/001_create_fact_market_data.sql");

/// Longest table-name part of constraint and index names: `idx_` + prefix +
/// `_ticker_date` stays within Postgres' 63-byte limit, so names never get
/// truncated into each other.
const PREFIX_LEN: usize = 40;

/// Names of the objects the DDL creates for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    pub unique: String,
    pub indexes: [String; 3],
}

pub(crate) fn names(table: &str) -> Names {
    let prefix = prefix(table);
    Names {
        unique: format!("uq_{prefix}_ticker_date"),
        indexes: [
            format!("idx_{prefix}_ticker"),
            format!("idx_{prefix}_date"),
            format!("idx_{prefix}_ticker_date"),
        ],
    }
}

fn prefix(table: &str) -> &str {
    // Identifiers are ASCII (checked by the configuration); stay on a char boundary anyway.
    let mut end = table.len().min(PREFIX_LEN);
    while !table.is_char_boundary(end) {
        end -= 1;
    }
    &table[..end]
}

/// Identifier text for use inside double quotes.
fn inner(ident: &str) -> String {
    ident.replace('"', "\"\"")
}

fn render(template: &str, schema: &str, table: &str) -> String {
    template
        .replace("{schema}", &inner(schema))
        .replace("{table}", &inner(table))
        .replace("{prefix}", &inner(prefix(table)))
}

/// Postgres DDL: schema, table, unique constraint and indexes.
pub(crate) fn postgres(schema: &str, table: &str) -> String {
    render(POSTGRES, schema, table)
}

/// SQLite DDL: table, unique constraint and indexes (no schemas in SQLite).
pub(crate) fn sqlite(table: &str) -> String {
    render(SQLITE, "main", table)
}

#[cfg(test)]
mod tests {
    use mdp_core::row::COLUMNS;

    use super::*;

    /// Column names of the CREATE TABLE, in order.
    fn ddl_columns(ddl: &str) -> Vec<String> {
        let body = ddl.split_once("CREATE TABLE").unwrap().1;
        body.lines()
            .map(str::trim)
            .filter(|l| l.starts_with('"'))
            .map(|l| l[1..].split('"').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn placeholders_are_all_substituted_and_quoted() {
        for ddl in [postgres("mdp", "facts"), sqlite("facts")] {
            assert!(!ddl.contains('{') && !ddl.contains('}'), "{ddl}");
            assert!(ddl.contains("\"uq_facts_ticker_date\" UNIQUE (\"ticker\", \"date\")"));
            for index in names("facts").indexes {
                assert!(
                    ddl.contains(&format!("CREATE INDEX IF NOT EXISTS \"{index}\"")),
                    "{index}"
                );
            }
        }
        assert!(postgres("mdp", "facts").contains("CREATE TABLE IF NOT EXISTS \"mdp\".\"facts\""));
        assert!(sqlite("facts").contains("CREATE TABLE IF NOT EXISTS \"facts\""));
    }

    #[test]
    fn columns_are_in_contract_order() {
        for ddl in [postgres("s", "t"), sqlite("t")] {
            assert_eq!(ddl_columns(&ddl), COLUMNS);
        }
    }

    #[test]
    fn long_table_names_give_distinct_short_index_names() {
        let table = "t".repeat(63);
        let n = names(&table);
        assert!(n.indexes.iter().chain([&n.unique]).all(|x| x.len() <= 63));
        assert_ne!(n.indexes[0], n.indexes[2]);
    }
}
