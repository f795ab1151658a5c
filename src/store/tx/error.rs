//! Why a unit of work stops: the database (retry, or fail), or the caller (`Abort`).

use std::convert::Infallible;

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::store::StoreError;

/// A database-level reason a transaction stopped.
#[derive(Debug)]
pub enum TxError {
    /// A concurrent writer changed the same row: run the transaction again.
    Retry,
    /// A read-only unit of work tried to write (SQLite, while another writer holds
    /// the lock): run it again as a writer.
    NeedsWriter,
    Db(DieselError),
}

impl From<DieselError> for TxError {
    fn from(err: DieselError) -> Self {
        match err {
            // Two writers created the same (type, id): the loser retries and sees the row.
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
            | DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => Self::Retry,
            // PostgreSQL broke a lock cycle (SQLSTATE 40P01) by failing this
            // transaction: run it again, like a serialization failure.
            DieselError::DatabaseError(_, ref info)
                if info.message().contains("deadlock detected") =>
            {
                Self::Retry
            }
            other => Self::Db(other),
        }
    }
}

/// Why a unit of work failed: the database, or the caller's own decision (`Abort`),
/// which rolls back everything the unit wrote.
#[derive(Debug)]
pub enum Failure<E> {
    Tx(TxError),
    Abort(E),
}

impl<E> From<TxError> for Failure<E> {
    fn from(err: TxError) -> Self {
        Self::Tx(err)
    }
}

impl<E> From<DieselError> for Failure<E> {
    fn from(err: DieselError) -> Self {
        Self::Tx(err.into())
    }
}

/// The result of a unit of work after retries.
#[derive(Debug)]
pub enum WriteError<E> {
    Store(StoreError),
    Abort(E),
}

/// A unit of work that cannot abort fails only in the store.
impl From<WriteError<Infallible>> for StoreError {
    fn from(err: WriteError<Infallible>) -> Self {
        match err {
            WriteError::Store(e) => e,
            WriteError::Abort(never) => match never {},
        }
    }
}

impl<E> From<StoreError> for WriteError<E> {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}
