//! Work the after-write hook defers to the end of a unit of work: a projection that
//! several versions of one unit touch (a referral's access grants and statistics row,
//! recomputed from what is stored) is recomputed once, from the unit's final state,
//! instead of after every version. A referral's transaction writes its Consent,
//! ServiceRequest and Task in one unit, and each of them asked for the same refresh.
//!
//! Deferred work runs before the unit commits, and earlier when something in the unit
//! reads through what it projects: a read under a narrowed scope (the access grants
//! decide what it sees) settles it first, and the hook may settle it itself (the
//! notification outbox narrows events by the grants).

use std::collections::BTreeSet;

use super::{Tx, TxError};

impl<'a> Tx<'a> {
    /// Runs with `deferred` collecting what the hook defers (the unit runners).
    pub(super) fn deferring(&mut self, deferred: &'a std::cell::RefCell<BTreeSet<String>>) {
        self.deferred = Some(deferred);
    }

    /// Defers the hook's work named `key` to [`Tx::settle_deferred`] (once per key,
    /// however often it is deferred). `false` when this unit of work defers nothing:
    /// the caller does the work now.
    pub fn defer(&self, key: String) -> bool {
        match self.deferred {
            Some(deferred) => {
                deferred.borrow_mut().insert(key);
                true
            }
            None => false,
        }
    }

    /// Runs the deferred work now (the hook's `settle`), each key once.
    pub fn settle_deferred(&mut self) -> Result<(), TxError> {
        let (Some(deferred), Some(hook)) = (self.deferred, self.hook) else {
            return Ok(());
        };
        loop {
            let keys = std::mem::take(&mut *deferred.borrow_mut());
            if keys.is_empty() {
                return Ok(());
            }
            hook.settle(self, keys)?;
        }
    }

    /// Settles deferred work before a read under a narrowed scope, which sees what
    /// the projections let it see.
    pub(in crate::store) fn settle_for_scope(&mut self) -> Result<(), TxError> {
        if matches!(self.access.scope, super::super::access::ReadScope::All) {
            return Ok(());
        }
        self.settle_deferred()
    }
}

#[cfg(test)]
#[path = "deferred_tests.rs"]
mod tests;
