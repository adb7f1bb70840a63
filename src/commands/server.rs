//! (being written)

use super::CommandTable;

pub fn register(_table: &mut CommandTable) {}

/// Client names may not contain spaces or newlines (they would break
/// CLIENT LIST's format).
pub fn validate_client_name(name: &[u8]) -> Result<(), crate::error::CmdError> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(crate::error::CmdError::err("Client names cannot contain spaces, newlines or special characters."));
    }
    Ok(())
}
