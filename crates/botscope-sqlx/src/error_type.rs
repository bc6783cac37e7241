//! The `error_type` label: a closed vocabulary of sqlx error classes.

use super::sqlx;
use sqlx::error::{Error, ErrorKind};

/// `fetch_one` found no row.
pub const ROW_NOT_FOUND: &str = "row_not_found";
/// No connection became free within the pool's acquire timeout.
pub const POOL_TIMED_OUT: &str = "pool_timed_out";
/// The pool was closed.
pub const POOL_CLOSED: &str = "pool_closed";
/// Reading from or writing to the server failed (reset, closed, killed backend).
pub const IO: &str = "io";
/// TLS failed.
pub const TLS: &str = "tls";
/// The server sent something the driver did not expect.
pub const PROTOCOL: &str = "protocol";
/// A value could not be decoded.
pub const DECODE: &str = "decode";
/// A column asked for by name or index does not exist.
pub const COLUMN_NOT_FOUND: &str = "column_not_found";
/// A unique or primary key constraint failed.
pub const UNIQUE_VIOLATION: &str = "unique_violation";
/// A foreign key constraint failed.
pub const FOREIGN_KEY_VIOLATION: &str = "foreign_key_violation";
/// A `NOT NULL` constraint failed.
pub const NOT_NULL_VIOLATION: &str = "not_null_violation";
/// A `CHECK` constraint failed.
pub const CHECK_VIOLATION: &str = "check_violation";
/// Any other error returned by the database (syntax, permissions, deadlock, ...).
pub const DATABASE: &str = "database";
/// The connection options are invalid.
pub const CONFIGURATION: &str = "configuration";
/// Anything else.
pub const OTHER: &str = "other";

/// Every value [`error_type`] returns.
pub const ALL: [&str; 15] = [
    ROW_NOT_FOUND,
    POOL_TIMED_OUT,
    POOL_CLOSED,
    IO,
    TLS,
    PROTOCOL,
    DECODE,
    COLUMN_NOT_FOUND,
    UNIQUE_VIOLATION,
    FOREIGN_KEY_VIOLATION,
    NOT_NULL_VIOLATION,
    CHECK_VIOLATION,
    DATABASE,
    CONFIGURATION,
    OTHER,
];

/// The `error_type` label value of an sqlx error, one of [`ALL`].
///
/// Database errors are classed by [`DatabaseError::kind`](sqlx::error::DatabaseError::kind).
/// A server that ends the session (PostgreSQL `pg_terminate_backend`, SQLSTATE class `08`
/// "connection exception" or `57P01`–`57P03`) counts as `io`: the connection is gone, like a
/// reset socket.
pub fn error_type(error: &Error) -> &'static str {
    match error {
        Error::RowNotFound => ROW_NOT_FOUND,
        Error::PoolTimedOut => POOL_TIMED_OUT,
        Error::PoolClosed => POOL_CLOSED,
        Error::Io(_) | Error::WorkerCrashed => IO,
        Error::Tls(_) => TLS,
        Error::Protocol(_) => PROTOCOL,
        Error::Decode(_) | Error::ColumnDecode { .. } => DECODE,
        Error::ColumnNotFound(_) | Error::ColumnIndexOutOfBounds { .. } => COLUMN_NOT_FOUND,
        Error::Configuration(_) => CONFIGURATION,
        Error::Database(db) => match db.kind() {
            ErrorKind::UniqueViolation => UNIQUE_VIOLATION,
            ErrorKind::ForeignKeyViolation => FOREIGN_KEY_VIOLATION,
            ErrorKind::NotNullViolation => NOT_NULL_VIOLATION,
            ErrorKind::CheckViolation => CHECK_VIOLATION,
            _ => match db.code().as_deref() {
                Some(code)
                    if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03") =>
                {
                    IO
                }
                _ => DATABASE,
            },
        },
        _ => OTHER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_independent_classes() {
        assert_eq!(error_type(&Error::RowNotFound), "row_not_found");
        assert_eq!(error_type(&Error::PoolTimedOut), "pool_timed_out");
        assert_eq!(error_type(&Error::PoolClosed), "pool_closed");
        assert_eq!(
            error_type(&Error::Io(std::io::ErrorKind::ConnectionReset.into())),
            "io"
        );
        assert_eq!(error_type(&Error::Protocol("x".into())), "protocol");
        assert_eq!(
            error_type(&Error::ColumnNotFound("x".into())),
            "column_not_found"
        );
        assert_eq!(error_type(&Error::Decode("x".into())), "decode");
        assert_eq!(error_type(&Error::InvalidArgument("x".into())), "other");
        assert!(
            ALL.iter()
                .all(|v| v.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }
}
