//! The versioned migrations of `infra/warehouse/<dialect>/NNN_description.sql`
//! (embedded at build time), with their placeholders substituted.

use mdp_core::config::WarehouseKind;

/// The folder of `infra/warehouse/` holding a dialect's migrations.
#[cfg(test)]
fn folder(dir: WarehouseKind) -> &'static str {
    match dir {
        WarehouseKind::Sqlite => "sqlite",
        WarehouseKind::Postgres => "postgres",
        WarehouseKind::Redshift => "redshift",
    }
}

/// One migration file: `NNN_description.sql`, applied once per table, in
/// version order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Migration {
    pub version: i32,
    pub description: &'static str,
    pub file: &'static str,
    template: &'static str,
}

impl Migration {
    /// From the file name `NNN_description.sql` and its text. The list below
    /// is checked against the folders by a test, so a bad name fails `cargo test`.
    fn new(file: &'static str, template: &'static str) -> Migration {
        let stem = file.strip_suffix(".sql").unwrap_or(file);
        let (number, description) = stem.split_once('_').unwrap_or((stem, ""));
        Migration {
            version: number.parse().unwrap_or(0),
            description,
            file,
            template,
        }
    }

    /// The SQL with the placeholders substituted (`schema` is ignored by SQLite).
    pub fn sql(&self, schema: &str, table: &str) -> String {
        render(self.template, schema, table)
    }

    /// The tables of fixed name it creates (`CREATE TABLE IF NOT EXISTS
    /// ... "name"`), the fact table aside. When one of them is missing, the
    /// migration counts as not applied and runs again (its statements are
    /// idempotent), so a dropped side table comes back with the next migrate.
    pub fn creates(&self) -> Vec<&'static str> {
        self.template
            .split("CREATE TABLE IF NOT EXISTS ")
            .skip(1)
            .filter_map(|rest| {
                let name = rest.split_once(" (")?.0.trim();
                let last = name.rsplit('.').next()?;
                let last = last.strip_prefix('"')?.strip_suffix('"')?;
                (!last.contains('{')).then_some(last)
            })
            .collect()
    }
}

macro_rules! migrations {
    ($dir:literal: $($file:literal),+ $(,)?) => {
        vec![$(Migration::new(
            $file,
            include_str!(concat!("../../../infra/warehouse/", $dir, "/", $file)),
        )),+]
    };
}

/// The migrations of a dialect, oldest first. Add a file to the folder and
/// its name here; never change a file that has been released (databases
/// record its version as applied and will not run it again).
pub(crate) fn migrations(dir: WarehouseKind) -> Vec<Migration> {
    match dir {
        WarehouseKind::Sqlite => migrations!(
            "sqlite":
            "001_create_fact_market_data.sql",
            "002_drop_redundant_indexes.sql",
            "003_create_corporate_actions_and_quality_tables.sql",
        ),
        WarehouseKind::Postgres => migrations!(
            "postgres":
            "001_create_fact_market_data.sql",
            "002_adopt_airflow_table.sql",
            "003_drop_redundant_indexes.sql",
            "004_create_corporate_actions_and_quality_tables.sql",
        ),
        WarehouseKind::Redshift => migrations!(
            "redshift":
            "001_create_fact_market_data.sql",
            "002_create_corporate_actions_and_quality_tables.sql",
        ),
    }
}

/// Longest table-name part of constraint and index names: `idx_` + prefix +
/// `_ticker_date` stays within Postgres' 63-byte limit, so names never get
/// truncated into each other.
const PREFIX_LEN: usize = 40;

/// Names of the objects the DDL creates for one table.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    pub unique: String,
    pub indexes: [String; 3],
}

#[cfg(test)]
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

#[cfg(test)]
mod tests {
    use mdp_core::schema::{COLUMNS, ColumnType, MARKET_DATA, Role};

    use super::*;

    /// (name, type, NOT NULL) of each column of the CREATE TABLE, in order.
    fn ddl_columns(ddl: &str) -> Vec<(String, String, bool)> {
        let body = ddl.split_once("CREATE TABLE").unwrap().1;
        body.lines()
            .map(str::trim)
            .filter(|l| l.starts_with('"'))
            .map(|l| {
                let (name, rest) = l[1..].split_once('"').unwrap();
                let rest = rest.trim().trim_end_matches(',');
                let not_null = rest.ends_with("NOT NULL");
                let ty = rest.trim_end_matches("NOT NULL").trim().to_string();
                (name.to_string(), ty, not_null)
            })
            .collect()
    }

    /// The type the dialect stores a schema type as.
    fn dialect_type(dir: WarehouseKind, ty: ColumnType) -> &'static str {
        match dir {
            WarehouseKind::Sqlite => crate::sqlite::sqlite_type(ty),
            WarehouseKind::Postgres | WarehouseKind::Redshift => crate::postgres::pg_type(ty),
        }
    }

    fn first(dir: WarehouseKind, schema: &str, table: &str) -> String {
        migrations(dir)[0].sql(schema, table)
    }

    #[test]
    fn placeholders_are_all_substituted_and_quoted() {
        for dir in [
            WarehouseKind::Sqlite,
            WarehouseKind::Postgres,
            WarehouseKind::Redshift,
        ] {
            for m in migrations(dir) {
                let sql = m.sql("mdp", "facts");
                assert!(
                    !sql.contains('{') && !sql.contains('}'),
                    "{}: {sql}",
                    m.file
                );
            }
            let ddl = first(dir, "mdp", "facts");
            assert!(ddl.contains("\"uq_facts_ticker_date\" UNIQUE (\"ticker\", \"date\")"));
            for index in names("facts").indexes {
                let created = ddl.contains(&format!("CREATE INDEX IF NOT EXISTS \"{index}\""));
                // Redshift has no secondary indexes: its sort key replaces them.
                assert_eq!(created, dir != WarehouseKind::Redshift, "{dir:?} {index}");
            }
        }
        for dir in [WarehouseKind::Postgres, WarehouseKind::Redshift] {
            assert!(
                first(dir, "mdp", "facts").contains("CREATE TABLE IF NOT EXISTS \"mdp\".\"facts\"")
            );
        }
        assert!(
            first(WarehouseKind::Sqlite, "x", "facts")
                .contains("CREATE TABLE IF NOT EXISTS \"facts\"")
        );
        let adopt = &migrations(WarehouseKind::Postgres)[1];
        let sql = adopt.sql("mdp", "facts");
        assert!(sql.contains("'\"mdp\".\"facts\"'::regclass"), "{sql}");
        assert!(
            sql.contains("['idx_facts_ticker_date', '\"ticker\", \"date\" DESC'"),
            "{sql}"
        );
    }

    /// Every dialect's table has exactly the schema's columns, in its order,
    /// each of the type the dialect maps its schema type to; a NOT NULL only
    /// where the schema forbids NULL, and always on the key.
    #[test]
    fn every_ddl_follows_the_schema() {
        for dir in [
            WarehouseKind::Sqlite,
            WarehouseKind::Postgres,
            WarehouseKind::Redshift,
        ] {
            let columns = ddl_columns(&first(dir, "s", "t"));
            let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
            assert_eq!(names, COLUMNS, "{dir:?}");
            for ((name, ty, not_null), column) in columns.iter().zip(MARKET_DATA.iter()) {
                if dir == WarehouseKind::Redshift && column.ty == ColumnType::Text {
                    // Redshift has no unbounded text: each column has its
                    // VARCHAR(n), codes 256 bytes, names up to 65535.
                    let n: u32 = ty
                        .strip_prefix("VARCHAR(")
                        .and_then(|t| t.strip_suffix(')'))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| panic!("{name}: {ty}"));
                    assert!((256..=65535).contains(&n), "{name}: {ty}");
                    continue;
                }
                assert_eq!(ty, dialect_type(dir, column.ty), "{dir:?} {name}");
                if *not_null {
                    assert!(!column.nullable, "{dir:?} {name} is NOT NULL");
                }
                if column.role == Role::Key {
                    assert!(*not_null, "{dir:?} key column {name}");
                }
            }
        }
    }

    #[test]
    fn redshift_distributes_and_sorts_by_ticker() {
        let ddl = first(WarehouseKind::Redshift, "s", "t");
        assert!(
            ddl.trim_end().ends_with(
                ")\nDISTSTYLE KEY\nDISTKEY (\"ticker\")\nCOMPOUND SORTKEY (\"ticker\", \"date\");"
            ),
            "{ddl}"
        );
        assert!(!ddl.contains("INDEX"), "{ddl}");
        assert!(ddl.contains("\"ticker\"               VARCHAR(16)      NOT NULL"));
        assert!(ddl.contains("\"updated_at\"           TIMESTAMPTZ      NOT NULL"));
    }

    /// Every file of each folder is listed, versions count up from 1 without
    /// gaps, and names are `NNN_description.sql`.
    #[test]
    fn the_list_matches_the_folders() {
        for dir in [
            WarehouseKind::Sqlite,
            WarehouseKind::Postgres,
            WarehouseKind::Redshift,
        ] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../infra/warehouse")
                .join(folder(dir));
            let mut files: Vec<String> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|f| f.ends_with(".sql"))
                .collect();
            files.sort();
            let listed = migrations(dir);
            let names: Vec<&str> = listed.iter().map(|m| m.file).collect();
            assert_eq!(names, files, "{dir:?}");
            for (i, m) in listed.iter().enumerate() {
                assert_eq!(m.version, i as i32 + 1, "{}", m.file);
                assert_eq!(&m.file[..4], format!("{:03}_", m.version), "{}", m.file);
                assert!(
                    !m.description.is_empty()
                        && m.description
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{}",
                    m.file
                );
            }
        }
    }

    /// The side tables are created by one migration of each dialect, which
    /// says so ([`Migration::creates`]); the others create only the fact table.
    #[test]
    fn the_side_tables_migration_names_its_tables() {
        for dir in [
            WarehouseKind::Sqlite,
            WarehouseKind::Postgres,
            WarehouseKind::Redshift,
        ] {
            let all = migrations(dir);
            let (last, earlier) = all.split_last().unwrap();
            let mut created = last.creates();
            created.sort();
            let mut side: Vec<&str> = crate::side::SIDE_TABLES.iter().map(|t| t.name).collect();
            side.sort();
            assert_eq!(created, side, "{dir:?}");
            assert!(earlier.iter().all(|m| m.creates().is_empty()), "{dir:?}");
            let sql = last.sql("mdp", "facts");
            assert!(
                !sql.contains("ON CONFLICT") && !sql.contains("facts"),
                "{sql}"
            );
            for table in crate::side::SIDE_TABLES {
                let columns = ddl_columns_of(&sql, table.name);
                let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
                assert_eq!(names, table.columns, "{dir:?} {}", table.name);
                for (name, _, not_null) in &columns {
                    assert_eq!(
                        *not_null,
                        table.not_null.contains(&name.as_str()),
                        "{dir:?} {}.{name}",
                        table.name
                    );
                }
                let body = sql
                    .split_once(&format!("\"{}\" (", table.name))
                    .unwrap()
                    .1
                    .split_once(");")
                    .unwrap()
                    .0;
                let key = table
                    .key
                    .iter()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                assert!(body.contains(&format!("UNIQUE ({key})")), "{dir:?} {body}");
                if dir == WarehouseKind::Redshift {
                    assert!(
                        body.ends_with(
                            ")\nDISTSTYLE KEY\nDISTKEY (\"ticker\")\nCOMPOUND SORTKEY (\"ticker\", \"date\""
                        ),
                        "{body}"
                    );
                    assert!(!body.contains("TEXT"), "{body}");
                }
            }
            if dir != WarehouseKind::Sqlite {
                assert!(sql.contains("CREATE TABLE IF NOT EXISTS \"mdp\".\"quality_findings\""));
            }
        }
    }

    /// (name, type, NOT NULL) of the columns of the CREATE TABLE of `table`.
    fn ddl_columns_of(sql: &str, table: &str) -> Vec<(String, String, bool)> {
        let body = sql
            .split_once(&format!("\"{table}\" ("))
            .unwrap()
            .1
            .split_once("CONSTRAINT")
            .unwrap()
            .0;
        ddl_columns(&format!("CREATE TABLE\n{body}"))
    }

    #[test]
    fn long_table_names_give_distinct_short_index_names() {
        let table = "t".repeat(63);
        let n = names(&table);
        assert!(n.indexes.iter().chain([&n.unique]).all(|x| x.len() <= 63));
        assert_ne!(n.indexes[0], n.indexes[2]);
    }
}
