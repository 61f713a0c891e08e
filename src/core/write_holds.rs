//! Streams whose writes from clients are held here: a stream being mirrored from Kinesis
//! (`migrate/`) has one writer, the source, until it is cut over. The mirror appends to the
//! log itself, below this check.

use std::sync::Arc;

use super::error::{CoreError, CoreResult};
use super::service::Core;
use crate::backend::Log;

impl Core {
    /// Refuses client writes to `stream` with `why` until `release_writes`.
    pub fn hold_writes(&self, stream: &str, why: String) {
        self.write_holds.write().insert(stream.to_string(), why);
    }

    pub fn release_writes(&self, stream: &str) {
        self.write_holds.write().remove(stream);
    }

    /// Why client writes to `stream` are held, if they are. A stream the catalog says was
    /// cut over (by this replica or another) is not held.
    pub fn write_hold(&self, stream: &str) -> Option<String> {
        let why = self.write_holds.read().get(stream).cloned()?;
        let cut_over = self.stream(stream).is_ok_and(|s| s.cut_over_ms.is_some());
        (!cut_over).then_some(why)
    }

    pub(super) fn check_write_hold(&self, stream: &str) -> CoreResult<()> {
        match self.write_hold(stream) {
            Some(why) => Err(CoreError::WritesHeld(why)),
            None => Ok(()),
        }
    }

    /// The log under the catalog, for a writer that keeps its own order (the mirror).
    pub fn log(&self) -> Arc<dyn Log> {
        self.log.clone()
    }
}
