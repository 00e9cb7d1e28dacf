//! Caps on an instance's costly work (bulk creates, import parses, exports) that no one
//! workspace can fill: it holds at most half of the places, so a workspace whose requests
//! hold theirs for long (a slow body, a slow reader) leaves the others a share. A place is
//! taken at once or refused (503 `busy`, `Retry-After`), never waited for: a wait would count
//! toward the request's timeout and hold one of the API's slots.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::caller::WorkspaceId;
use crate::error::Error;

/// The places of one kind of costly work in this instance: at most `total` at once, and at
/// most half of them (one, of one or two) held by one workspace's.
#[derive(Debug)]
pub(crate) struct Places {
    total: Arc<Semaphore>,
    per_workspace: usize,
    /// Places held per workspace: at most `total` entries (none at 0).
    held: Arc<Mutex<HashMap<i64, usize>>>,
}

impl Places {
    pub(crate) fn new(total: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(total)),
            per_workspace: (total / 2).max(1),
            held: Arc::default(),
        }
    }

    /// A place for work of `workspace`; 503 `busy` (`Retry-After`) when the instance's
    /// are all taken, or the workspace holds its share.
    pub(crate) fn take(&self, workspace: WorkspaceId) -> Result<Place, Error> {
        // The share first: a workspace refused for its share never holds, even for a moment,
        // a place another workspace could have had.
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.get(&workspace.get()).copied().unwrap_or(0) >= self.per_workspace {
            return Err(Error::Busy);
        }
        let permit = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::Busy)?;
        *held.entry(workspace.get()).or_default() += 1;
        Ok(Place {
            _permit: permit,
            workspace: workspace.get(),
            held: Arc::clone(&self.held),
        })
    }
}

/// A place taken from [`Places`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Place {
    _permit: OwnedSemaphorePermit,
    workspace: i64,
    held: Arc<Mutex<HashMap<i64, usize>>>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(mine) = held.get_mut(&self.workspace) {
            *mine -= 1;
            if *mine == 0 {
                held.remove(&self.workspace);
            }
        }
    }
}
