//! How the binary ends: an error caused by the user's input (an unknown org, a duplicate
//! name, a bad value) exits with code 2; anything else that fails exits with code 1.

use std::fmt;

/// A refusal of what the user asked, with the reason to show.
#[derive(Debug)]
pub struct UserError(String);

impl UserError {
    pub fn new(message: impl Into<String>) -> UserError {
        UserError(message.into())
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

/// The process exit code for a failed command.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if error.chain().any(|cause| cause.is::<UserError>()) {
        2
    } else {
        1
    }
}
