//! How the binary ends: an error caused by the user's input (an unknown org, a duplicate
//! name, a bad value) exits with code 2; anything else that fails exits with code 1.

use std::fmt;

use sfpg_control::master_key::MasterKeyError;

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
    // A master key that is missing, malformed, readable by others or not the one the
    // credentials were sealed with is configuration the user gave; a file that cannot be
    // read or written is the machine's.
    let bad_key = |cause: &(dyn std::error::Error + 'static)| {
        cause
            .downcast_ref::<MasterKeyError>()
            .is_some_and(|error| !matches!(error, MasterKeyError::Io { .. }))
    };
    if error
        .chain()
        .any(|cause| cause.is::<UserError>() || bad_key(cause))
    {
        2
    } else {
        1
    }
}

/// The error and its causes on one line, `outer: cause: root`, each cause left out when the
/// text before it already says it (many errors name their source in their own message).
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfpg_control::MasterKey;

    /// An error that names its source in its own message, as many do.
    #[derive(Debug)]
    struct Bind {
        source: std::io::Error,
    }

    impl fmt::Display for Bind {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "cannot listen on 127.0.0.1:6543: {}", self.source)
        }
    }

    impl std::error::Error for Bind {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_cause_already_said_is_not_said_again() {
        let io = || std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let error = anyhow::Error::from(Bind { source: io() }).context("the proxy stopped");
        assert_eq!(
            one_line(&error),
            "the proxy stopped: cannot listen on 127.0.0.1:6543: Address already in use"
        );
        let error = anyhow::Error::from(io()).context("cannot bind");
        assert_eq!(one_line(&error), "cannot bind: Address already in use");
    }

    #[test]
    fn a_master_key_the_user_configured_wrong_is_bad_input() {
        let missing = anyhow::Error::from(MasterKeyError::Missing {
            path: "/nowhere/master.key".into(),
        });
        assert_eq!(exit_code(&missing), 2);
        assert_eq!(exit_code(&anyhow::Error::from(MasterKeyError::BadEnv)), 2);
        let directory = MasterKey::load_or_create_file(&std::env::temp_dir()).unwrap_err();
        assert!(matches!(directory, MasterKeyError::NotAFile { .. }));
        assert_eq!(exit_code(&anyhow::Error::from(directory)), 2);
        let unreadable = anyhow::Error::from(MasterKeyError::Io {
            path: "/k".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
        assert_eq!(exit_code(&unreadable), 1);
        assert_eq!(exit_code(&anyhow::anyhow!("down")), 1);
        assert_eq!(exit_code(&UserError::new("no such org").into()), 2);
    }
}
