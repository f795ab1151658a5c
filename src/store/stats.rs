//! Counts for the operator's metrics (README "Metrics"), read in one unit of work:
//! the outbox per Subscription status, and the index rows of ServiceRequests and Tasks.
//! Only codes and numbers come back, never an id.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::tx::{Tx, TxError};

/// The outbox rows of one Subscription status.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct OutboxStatus {
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = BigInt)]
    pub subscriptions: i64,
    /// Events recorded and not delivered yet (`events_since_start - delivered_through`).
    #[diesel(sql_type = BigInt)]
    pub backlog: i64,
    /// Subscriptions whose last delivery attempt failed (`failing_since` set).
    #[diesel(sql_type = BigInt)]
    pub failing: i64,
}

/// Current resources of a type per code of a token search parameter.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct CodeCount {
    #[diesel(sql_type = Text)]
    pub resource_type: String,
    #[diesel(sql_type = Text)]
    pub code: String,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// What [`Tx::operations_counts`] counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationsCounts {
    pub outbox: Vec<OutboxStatus>,
    /// ServiceRequests and Tasks per `status` code.
    pub by_status: Vec<CodeCount>,
    /// Open Tasks (not completed, cancelled, failed, rejected or entered-in-error)
    /// with businessStatus `unroutable` or without owner.
    pub unroutable_tasks: i64,
    /// Tasks tagged `overdue` (`flag_system`).
    pub overdue_tasks: i64,
}

/// A string constant of this module in SQL text: no quote may appear in it.
fn literal(value: &str) -> Result<String, TxError> {
    if value.contains('\'') {
        return Err(TxError::Db(diesel::result::Error::QueryBuilderError(
            format!("a quote in a constant: {value}").into(),
        )));
    }
    Ok(format!("'{value}'"))
}

impl Tx<'_> {
    /// The operator's counts (reads only). `business_status_system` and `flag_system`
    /// are the CodeSystems of the Task's `unroutable` business status and `overdue`
    /// tag. Counts come from the search index, which holds current, undeleted
    /// resources only.
    pub fn operations_counts(
        &mut self,
        business_status_system: &str,
        flag_system: &str,
    ) -> Result<OperationsCounts, TxError> {
        let outbox = diesel::sql_query(
            "SELECT status, CAST(COUNT(*) AS BIGINT) AS subscriptions, \
             CAST(COALESCE(SUM(events_since_start - delivered_through), 0) AS BIGINT) AS backlog, \
             CAST(COUNT(failing_since) AS BIGINT) AS failing \
             FROM subscription_state GROUP BY status ORDER BY status",
        )
        .load::<OutboxStatus>(self.conn)?;
        let by_status = diesel::sql_query(
            "SELECT resource_type, code, CAST(COUNT(*) AS BIGINT) AS count FROM search_token \
             WHERE param = 'status' AND resource_type IN ('ServiceRequest', 'Task') \
             GROUP BY resource_type, code ORDER BY resource_type, code",
        )
        .load::<CodeCount>(self.conn)?;
        let business = literal(business_status_system)?;
        let unroutable = diesel::sql_query(format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM resources r \
             WHERE r.resource_type = 'Task' AND NOT r.deleted \
             AND NOT EXISTS (SELECT 1 FROM search_token s WHERE s.resource_type = 'Task' \
                 AND s.id = r.id AND s.param = 'status' AND s.code IN \
                 ('completed', 'cancelled', 'failed', 'rejected', 'entered-in-error')) \
             AND (EXISTS (SELECT 1 FROM search_token s WHERE s.resource_type = 'Task' \
                     AND s.id = r.id AND s.param = 'business-status' \
                     AND s.system = {business} AND s.code = 'unroutable') \
                  OR NOT EXISTS (SELECT 1 FROM search_reference s \
                     WHERE s.resource_type = 'Task' AND s.id = r.id AND s.param = 'owner'))"
        ))
        .get_result::<Count>(self.conn)?
        .n;
        let flag = literal(flag_system)?;
        let overdue = diesel::sql_query(format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM search_token \
             WHERE resource_type = 'Task' AND param = '_tag' AND system = {flag} \
             AND code = 'overdue'"
        ))
        .get_result::<Count>(self.conn)?
        .n;
        Ok(OperationsCounts {
            outbox,
            by_status,
            unroutable_tasks: unroutable,
            overdue_tasks: overdue,
        })
    }
}
