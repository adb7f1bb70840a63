//! (being written)

use super::CommandTable;

pub fn register(_table: &mut CommandTable) {}
