//! The htpasswd file as a watched [`Source`](crate::store::watch): a reload parses the file
//! again and swaps the table in (see `store::watch` for when that happens and what a failed
//! reload keeps).
//!
//! Entries whose user and stored hash are unchanged keep their ids ([`Table::keep_ids_of`]), so
//! the successes the cache remembered for them stay valid; a changed or new entry has a new id,
//! under which nothing is remembered yet. A removed user is refused from the next request on;
//! an added one is let in without a restart.

use std::io;
use std::sync::Arc;

use super::error::HtpasswdError;
use super::file::{ParseOptions, Table};
use super::users::FileUsers;
use crate::store::watch::Source;

/// The users of a file, with the options to parse it again.
pub(super) struct HtpasswdFile {
    pub(super) users: Arc<FileUsers>,
    pub(super) options: ParseOptions,
}

impl Source for HtpasswdFile {
    type Error = HtpasswdError;

    const THREAD: &'static str = "htpasswd-watch";

    fn name(&self) -> &Arc<str> {
        &self.users.name
    }

    fn read_error(&self, source: io::Error) -> HtpasswdError {
        HtpasswdError::Read {
            file: self.users.name.clone(),
            source: Arc::new(source),
        }
    }

    fn load(&self, contents: &[u8]) -> Result<usize, HtpasswdError> {
        let mut table = Table::parse(&self.users.name, contents, self.options)?;
        // Reloads are serialised by the watcher: the table in force is the one replaced.
        table.keep_ids_of(&self.users.table.load());
        let users = table.len();
        self.users.table.store(Arc::new(table));
        Ok(users)
    }
}
