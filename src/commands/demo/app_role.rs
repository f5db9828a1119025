//! The role the demo's user connects with when the demo runs its own cluster: a client of
//! the mirror as a real deployment has one, with the rights on the mirrored tables and no
//! more (not the cluster's superuser, who could switch the capture triggers off and make
//! the mirror differ from the org: README, "the trust boundary").

use anyhow::Context;

use super::cluster::random_hex;

/// The role's name.
pub const APP_ROLE: &str = "sfpg_demo_app";

/// Creates the role, or gives it a new password, and grants it what a client of the
/// mirror in schema `schema` needs: to read and write its tables, and to read where the
/// sync stands (`sfpg.status`, and what `sfpg status` reads of the control schema, the
/// orgs' credentials left out), so that the tour's `sfpg status` works with the printed
/// URL. Returns `config` with the role's user and password.
pub async fn app_role(
    db: &tokio_postgres::Client,
    config: &tokio_postgres::Config,
    schema: &str,
) -> anyhow::Result<tokio_postgres::Config> {
    // Hex: nothing to quote in the statement that sets it.
    let password = random_hex(16)?;
    let database = config.get_dbname().unwrap_or("postgres");
    let schema = sfpg_control::mirror::quote_ident(schema);
    db.batch_execute(&format!(
        "DO $$BEGIN
             IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{APP_ROLE}') THEN
                 CREATE ROLE {APP_ROLE};
             END IF;
         END$$;
         ALTER ROLE {APP_ROLE} WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB PASSWORD '{password}';
         GRANT CONNECT ON DATABASE {} TO {APP_ROLE};
         GRANT USAGE ON SCHEMA {schema} TO {APP_ROLE};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {APP_ROLE};
         GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {APP_ROLE};
         GRANT SELECT ON sfpg.status, sfpg.objects, sfpg.streams, sfpg.event_streams
            TO {APP_ROLE};
         GRANT SELECT (name, schema_name, enabled, paused_reason, api_used, api_max,
                       api_seen_at, last_error, last_error_at, last_error_code,
                       rate_requests, rate_period_ms, max_daily_share, cdc_enabled,
                       cdc_transport)
            ON sfpg.orgs TO {APP_ROLE};",
        sfpg_control::mirror::quote_ident(database)
    ))
    .await
    .context("cannot create the demo's client role")?;
    let mut app = config.clone();
    app.user(APP_ROLE).password(password);
    Ok(app)
}
