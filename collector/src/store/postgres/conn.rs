//! The PostgreSQL store's connections and the conversions between its values and the store's: errors,
//! integers (every integer column is `BIGINT`), and SQL text built together with its arguments.

use tokio_postgres::types::ToSql;

use crate::store::error::StoreError;

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        // The server's own message (and its detail) says more than the client's summary.
        match e.as_db_error() {
            Some(db) => StoreError::Database(match db.detail() {
                Some(detail) => format!("{}: {} ({detail})", db.code().code(), db.message()),
                None => format!("{}: {}", db.code().code(), db.message()),
            }),
            None => StoreError::Database(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> StoreError {
        match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::from(e),
            other => StoreError::Database(format!("connection pool: {other}")),
        }
    }
}

/// A `u64` as a `BIGINT` (values above `i64::MAX` never reach the store; they saturate).
pub(super) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A `BIGINT` as a `u64` (negative values read as 0).
pub(super) fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A boxed query argument.
pub(super) type Arg = Box<dyn ToSql + Sync + Send>;

/// SQL text and its arguments, built together: [`Sql::arg`] adds an argument and gives its placeholder.
#[derive(Default)]
pub(super) struct Sql {
    /// The text so far.
    pub(super) text: String,
    /// Its arguments, in placeholder order.
    pub(super) args: Vec<Arg>,
}

impl Sql {
    /// A statement starting with `text`.
    pub(super) fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            args: Vec::new(),
        }
    }

    /// Adds `value` as the next argument; returns its placeholder (`$n`).
    pub(super) fn arg(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.args.push(Box::new(value));
        format!("${}", self.args.len())
    }

    /// Appends `text` with every `{}` in it replaced by the placeholder of `value` (one argument, however
    /// often it is named).
    pub(super) fn push(&mut self, text: &str, value: impl ToSql + Sync + Send + 'static) {
        let at = self.arg(value);
        self.text.push_str(&text.replace("{}", &at));
    }

    /// The arguments as the client takes them.
    pub(super) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}
