//! `sfpg org set-cdc NAME on|off [--transport auto|pubsub|cometd]`: whether the org streams
//! its changes through Change Data Capture, and over which transport. A running sync learns
//! of it at once (the `orgs_changed` trigger), as of a new rate limit.

use clap::Args;
use sfpg_control::admin;
use sfpg_control::streams::CdcTransport;

use super::{DatabaseArgs, control_client, user_facing};

#[derive(Debug, Args)]
pub struct SetCdcArgs {
    /// The org's name in sfpg.
    pub name: String,
    /// `on`: the objects the org selects for Change Data Capture stream (polling drops to
    /// the safety cadence); `off`: every object polls.
    #[arg(value_parser = parse_on_off)]
    pub cdc: OnOff,
    /// The stream's transport: `auto` (the Pub/Sub API, or CometD when the Pub/Sub
    /// endpoint cannot be reached), `pubsub` or `cometd`. Unchanged when left out.
    #[arg(long)]
    pub transport: Option<CdcTransport>,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// `on` or `off`, as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnOff(pub bool);

/// `on`/`off` (also `true`/`false`, any case).
pub fn parse_on_off(text: &str) -> Result<OnOff, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" => Ok(OnOff(true)),
        "off" | "false" => Ok(OnOff(false)),
        _ => Err(format!("{text:?} is neither on nor off")),
    }
}

pub async fn set_cdc(args: SetCdcArgs) -> anyhow::Result<()> {
    let client = control_client(&args.database.database_url).await?;
    if let Some(transport) = args.transport {
        admin::set_cdc_transport(&client, &args.name, transport)
            .await
            .map_err(user_facing)?;
    }
    admin::set_cdc_enabled(&client, &args.name, args.cdc.0)
        .await
        .map_err(user_facing)?;
    let over = args
        .transport
        .map(|t| format!(" (transport {t})"))
        .unwrap_or_default();
    if args.cdc.0 {
        println!(
            "org {}: Change Data Capture on{over}; the objects the org selects for it stream",
            args.name
        );
    } else {
        println!(
            "org {}: Change Data Capture off{over}; every object polls",
            args.name
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_and_off_parse_in_any_case() {
        assert_eq!(parse_on_off("on"), Ok(OnOff(true)));
        assert_eq!(parse_on_off("OFF"), Ok(OnOff(false)));
        assert!(parse_on_off("maybe").is_err());
    }
}
