//! One module per subcommand: its arguments and what it does.

pub mod demo;
pub mod emulator;
pub mod migrate;
pub mod objects;
pub mod observe;
pub mod org;
pub mod proxy;
pub mod rotate_origin_key;
pub mod run;
pub mod status;
pub mod sync;
