//! A transaction that changes one run, with the events that record its changes.

use crate::error::ApiError;
use crate::state::AppState;
use gitweave_storage::events::{self, NewEvent};
use sqlx::PgConnection;
use std::ops::{Deref, DerefMut};
use uuid::Uuid;

/// A transaction on one run that collects the events of what it changes and writes them, in
/// the order they were recorded, in one statement as it commits: the events commit with the
/// changes they record or not at all, and a transaction that records several events pays for
/// one round trip instead of one each. Dropped without [`RunTx::commit`], it rolls back, its
/// events with it.
///
/// It dereferences to the connection, for the storage calls made in the transaction.
pub struct RunTx {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    run_id: Uuid,
    events: Vec<NewEvent>,
}

impl RunTx {
    /// Makes `tx` the transaction of changes to `run_id`.
    pub fn new(tx: sqlx::Transaction<'static, sqlx::Postgres>, run_id: Uuid) -> Self {
        Self {
            tx,
            run_id,
            events: Vec::new(),
        }
    }

    /// Begins a transaction of changes to `run_id`.
    pub async fn begin(state: &AppState, run_id: Uuid) -> Result<Self, ApiError> {
        Ok(Self::new(state.pool.begin().await?, run_id))
    }

    /// The run this transaction changes.
    pub fn run_id(&self) -> Uuid {
        self.run_id
    }

    /// Records an event, written when the transaction commits.
    pub fn record(&mut self, event: NewEvent) {
        self.events.push(event);
    }

    /// Takes the events recorded so far, for a caller that writes them itself in this
    /// transaction (`jobs::plan_summary` appends them with its read); the rest are written at
    /// the commit, after them.
    pub fn take_events(&mut self) -> Vec<NewEvent> {
        std::mem::take(&mut self.events)
    }

    /// Rolls back, recorded events and all.
    pub async fn rollback(self) -> Result<(), ApiError> {
        self.tx.rollback().await?;
        Ok(())
    }

    /// Writes the recorded events, then commits.
    pub async fn commit(mut self) -> Result<(), ApiError> {
        events::append_all(&mut self.tx, self.run_id, &self.events).await?;
        self.tx.commit().await?;
        Ok(())
    }
}

impl Deref for RunTx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for RunTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}
