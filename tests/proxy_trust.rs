//! The trust boundary of the write-back: a client role that may write a mirrored table
//! through the proxy, and owns nothing of sfpg's, can neither learn what lets a write past
//! the capture triggers nor run any code of its own while that is in force on its
//! connection. And the write-back does not depend on the client's column grants.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sfpg_testkit::world::{SCHEMA, World};
use tokio_postgres::error::SqlState;

/// A login role with DML rights on the mirrored Account table and nothing else of sfpg's
/// (PostgreSQL's default TEMP right included), unique to this test's database since roles
/// are cluster-wide. With `own_schema`, it also owns a schema of its own, `<role>_s`.
async fn client_role(world: &World, own_schema: bool) -> (String, tokio_postgres::Client) {
    let role = format!(
        "app_{}",
        world.db.name().replace(|c: char| !c.is_alphanumeric(), "_")
    );
    let direct = world.direct().await;
    direct
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'role-pw';
             GRANT USAGE ON SCHEMA {SCHEMA} TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON {SCHEMA}.account TO {role};
             GRANT USAGE ON SEQUENCE {SCHEMA}.account_id_seq TO {role};"
        ))
        .await
        .unwrap();
    if own_schema {
        direct
            .batch_execute(&format!("CREATE SCHEMA {role}_s AUTHORIZATION {role}"))
            .await
            .unwrap();
    }
    let client = connect_as(world, &role).await;
    (role, client)
}

async fn connect_as(world: &World, role: &str) -> tokio_postgres::Client {
    let mut config = world.proxy_config();
    config.user(role).password("role-pw");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

async fn drop_role(world: &World, role: &str) {
    world
        .direct()
        .await
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {role}_s CASCADE; DROP OWNED BY {role}; DROP ROLE {role}"
        ))
        .await
        .unwrap();
}

/// Every value of `sfpg.origin` a client's code saw, other than the proxy's own.
async fn loot(client: &tokio_postgres::Client, table: &str) -> Vec<String> {
    client
        .query(
            &format!("SELECT k FROM {table} WHERE k IS DISTINCT FROM 'proxy' AND k <> ''"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .filter_map(|row| row.get::<_, Option<String>>(0))
        .collect()
}

/// Whatever the client collected does not let a direct connection write the mirror.
async fn loot_does_not_bypass(world: &World, loot: &[String], id: i64) {
    let direct = world.direct().await;
    for origin in loot {
        let error = direct
            .batch_execute(&format!(
                "BEGIN; SELECT pg_catalog.set_config('sfpg.origin', '{origin}', true);
                 UPDATE {SCHEMA}.account SET name = 'Bypassed' WHERE id = {id}; COMMIT"
            ))
            .await
            .unwrap_err();
        direct.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(
            error.code(),
            Some(&SqlState::READ_ONLY_SQL_TRANSACTION),
            "{error}"
        );
    }
}

/// One exploit: the client role (with a schema of its own if `own_schema`) runs `setup`
/// (`{role}` stands for its name), which records every origin it sees in `loot`, then
/// updates an Account through the proxy. The update reaches Salesforce, the hooks see no
/// origin but the proxy's, and nothing they saw lets a direct connection write.
async fn exploit(own_schema: bool, setup: &str, loot_table: &str) {
    let world = World::start(&["Account"], 10).await;
    let (role, client) = client_role(&world, own_schema).await;
    let (id, sfid) = world.accounts(1).await.remove(0);
    client
        .batch_execute(&setup.replace("{role}", &role))
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "UPDATE {SCHEMA}.account SET description = 'exploited?' WHERE id OPERATOR(pg_catalog.=) {id}"
        ))
        .await
        .unwrap();
    assert_eq!(
        world.org_field("Account", &sfid, "Description"),
        serde_json::json!("exploited?")
    );
    let loot = loot(&client, &loot_table.replace("{role}", &role)).await;
    assert!(loot.is_empty(), "the client's code saw {loot:?}");
    loot_does_not_bypass(&world, &loot, id).await;
    world.assert_mirror_equals_org("Account").await;
    drop(client);
    drop_role(&world, &role).await;
}

/// The issue's first exploit: a domain over `jsonb` in pg_temp, whose CHECK records the
/// origin, stands in for `jsonb` in the write-back's statement.
#[tokio::test]
async fn a_domain_in_pg_temp_never_sees_the_sync_origin() {
    exploit(
        false,
        "CREATE TEMP TABLE loot(k text);
         CREATE FUNCTION pg_temp.grab(v pg_catalog.jsonb) RETURNS boolean LANGUAGE plpgsql AS
           $$BEGIN INSERT INTO pg_temp.loot VALUES (pg_catalog.current_setting('sfpg.origin', true)); RETURN true; END$$;
         CREATE DOMAIN pg_temp.jsonb AS pg_catalog.jsonb CHECK (pg_temp.grab(VALUE));
         CREATE DOMAIN pg_temp.text AS pg_catalog.text CHECK (pg_temp.grab(pg_catalog.to_jsonb(VALUE)));",
        "pg_temp.loot",
    )
    .await;
}

/// The issue's second exploit: a role that owns a schema puts its own
/// `set_config(text, text, boolean)` first on its search_path.
#[tokio::test]
async fn a_shadowing_set_config_never_sees_the_sync_origin() {
    exploit(
        true,
        "CREATE TABLE {role}_s.loot(k text);
         CREATE FUNCTION {role}_s.set_config(n text, v text, l boolean) RETURNS text
           LANGUAGE plpgsql AS
           $$BEGIN INSERT INTO {role}_s.loot VALUES (v);
                   RETURN pg_catalog.set_config(n, v, l); END$$;
         SET search_path = {role}_s, pg_catalog;",
        "{role}_s.loot",
    )
    .await;
}

/// A variant: the role's own `=` on bigint, first on its search_path, is what a write-back
/// joining rows by `t.id = r.id` would call.
#[tokio::test]
async fn a_shadowing_operator_never_sees_the_sync_origin() {
    exploit(
        true,
        "CREATE TABLE {role}_s.loot(k text);
         CREATE FUNCTION {role}_s.eq(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS
           $$BEGIN INSERT INTO {role}_s.loot VALUES (pg_catalog.current_setting('sfpg.origin', true));
                   RETURN a OPERATOR(pg_catalog.=) b; END$$;
         CREATE OPERATOR {role}_s.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = {role}_s.eq);
         SET search_path = {role}_s, pg_catalog;",
        "{role}_s.loot",
    )
    .await;
}

/// A role granted UPDATE on one column writes that column through the proxy: what the
/// write-back writes (sfid, SystemModstamp, formulas) does not depend on its grants. A
/// column it may not write is refused by PostgreSQL before anything reaches Salesforce.
#[tokio::test]
async fn a_column_grant_is_all_a_role_needs_to_update_that_column() {
    let world = World::start(&["Account"], 10).await;
    let role = format!(
        "col_{}",
        world.db.name().replace(|c: char| !c.is_alphanumeric(), "_")
    );
    let direct = world.direct().await;
    direct
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'role-pw';
             GRANT USAGE ON SCHEMA {SCHEMA} TO {role};
             GRANT SELECT ON {SCHEMA}.account TO {role};
             GRANT UPDATE (description) ON {SCHEMA}.account TO {role};"
        ))
        .await
        .unwrap();
    let client = connect_as(&world, &role).await;
    let (id, sfid) = world.accounts(1).await.remove(0);
    let composites = world.composite_calls();
    client
        .batch_execute(&format!(
            "UPDATE {SCHEMA}.account SET description = 'granted' WHERE id = {id}"
        ))
        .await
        .unwrap();
    assert_eq!(
        world.org_field("Account", &sfid, "Description"),
        serde_json::json!("granted")
    );
    assert_eq!(
        world
            .mirror_value("account", &sfid, "description")
            .await
            .as_deref(),
        Some("granted")
    );
    // A column it may not write: refused locally, nothing sent.
    let sent = world.composite_calls();
    assert_eq!(sent, composites + 1);
    let error = client
        .batch_execute(&format!(
            "UPDATE {SCHEMA}.account SET billingcity = 'Nope' WHERE id = {id}"
        ))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{error}"
    );
    assert_eq!(world.composite_calls(), sent);
    world.assert_mirror_equals_org("Account").await;
    drop(client);
    direct
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
}

/// Shadows, in schema `schema` (first on the role's search_path), every pg_catalog function
/// and operator whose signature can be written down (no polymorphic or pseudo types), and
/// in pg_temp every base type, each recording the origin it runs under in `schema.loot`
/// and then doing what the original does. Run as the client role: everything it creates is
/// the client's.
const SHADOW_EVERYTHING: &str = r#"
DO $shadow$
DECLARE
    f record;
    o record;
    t record;
    args text;
    call text;
    made int := 0;
BEGIN
    FOR f IN
        SELECT p.oid, p.proname, p.pronargs, p.prorettype::regtype::text AS ret,
               (SELECT array_agg(a::regtype::text ORDER BY i)
                  FROM unnest(p.proargtypes) WITH ORDINALITY AS x(a, i)) AS argtypes
          FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'pg_catalog'::regnamespace
           AND p.prokind = 'f' AND NOT p.proretset AND p.provariadic = 0
           AND p.pronargs <= 4
           AND NOT EXISTS (
                SELECT 1 FROM pg_catalog.pg_type ty
                 WHERE ty.oid = ANY (p.proargtypes::oid[] || p.prorettype)
                   AND (ty.typtype = 'p' OR ty.typname IN ('anyelement', 'anyarray')))
    LOOP
        SELECT string_agg(format('a%s %s', x.i, x.ty), ', ' ORDER BY x.i),
               string_agg(format('a%s', x.i), ', ' ORDER BY x.i)
          INTO args, call
          FROM unnest(f.argtypes) WITH ORDINALITY AS x(ty, i);
        BEGIN
            EXECUTE format(
                'CREATE FUNCTION %1$I.%2$I(%3$s) RETURNS %4$s LANGUAGE plpgsql
                   SET search_path = pg_catalog AS $body$
                   BEGIN
                     INSERT INTO %1$I.loot VALUES (%5$L, pg_catalog.current_setting(''sfpg.origin'', true));
                     RETURN pg_catalog.%2$I(%6$s);
                   END $body$',
                current_schema(), f.proname, coalesce(args, ''), f.ret, f.proname, coalesce(call, ''));
            made := made + 1;
        EXCEPTION WHEN OTHERS THEN NULL;
        END;
    END LOOP;
    FOR o IN
        SELECT op.oprname, op.oprleft::regtype::text AS l, op.oprright::regtype::text AS r,
               op.oprcode::regproc::text AS code
          FROM pg_catalog.pg_operator op
         WHERE op.oprnamespace = 'pg_catalog'::regnamespace
           AND op.oprleft <> 0 AND op.oprright <> 0
    LOOP
        -- The function behind the operator is shadowed above when it could be.
        BEGIN
            EXECUTE format(
                'CREATE OPERATOR %I.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %I.%I)',
                current_schema(), o.oprname, o.l, o.r, current_schema(),
                pg_catalog.regexp_replace(o.code, '^pg_catalog\.', ''));
            made := made + 1;
        EXCEPTION WHEN OTHERS THEN NULL;
        END;
    END LOOP;
    FOR t IN
        SELECT ty.typname FROM pg_catalog.pg_type ty
         WHERE ty.typnamespace = 'pg_catalog'::regnamespace AND ty.typtype = 'b'
           AND ty.typcategory <> 'A' AND ty.typname NOT LIKE '\_%'
    LOOP
        BEGIN
            EXECUTE format(
                'CREATE DOMAIN pg_temp.%1$I AS pg_catalog.%1$I CHECK (%2$I.seen(%3$L))',
                t.typname, current_schema(), 'type ' || t.typname);
            made := made + 1;
        EXCEPTION WHEN OTHERS THEN NULL;
        END;
    END LOOP;
    RAISE NOTICE 'shadows made: %', made;
END
$shadow$;
"#;

/// Makes `schema` a trap: a table `loot` where the function `seen` writes which function
/// ran and under which origin, and a shadow of every built-in function that calls it, first
/// on the client's search path.
async fn install_shadows(client: &tokio_postgres::Client, schema: &str) {
    client
        .batch_execute(&format!(
            "CREATE TABLE {schema}.loot(f text, k text);
             CREATE FUNCTION {schema}.seen(f text) RETURNS boolean LANGUAGE plpgsql
               SET search_path = pg_catalog AS
               $$BEGIN INSERT INTO {schema}.loot VALUES (f, pg_catalog.current_setting('sfpg.origin', true));
                       RETURN true; END$$;
             SET search_path = {schema}, pg_catalog;"
        ))
        .await
        .unwrap();
    client.batch_execute(SHADOW_EVERYTHING).await.unwrap();
    let shadows: i64 = client
        .query_one(
            "SELECT pg_catalog.count(*) FROM pg_catalog.pg_proc WHERE pronamespace OPERATOR(pg_catalog.=) pg_catalog.to_regnamespace($1::pg_catalog.text)::pg_catalog.oid",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    assert!(shadows > 1000, "only {shadows} shadows");
}

/// Writes through the proxy in every way a client can; each also calls a shadowed function
/// itself (lower, upper), so the shadows are seen to be in force.
async fn every_kind_of_write(client: &tokio_postgres::Client, id: i64) {
    client
        .batch_execute(&format!(
            "UPDATE {SCHEMA}.account SET description = lower('A') WHERE id = {id}"
        ))
        .await
        .unwrap();
    client
        .execute(
            &format!("UPDATE {SCHEMA}.account SET description = upper($1) WHERE id = $2"),
            &[&"b", &id],
        )
        .await
        .unwrap();
    let created: String = client
        .query_one(
            &format!(
                "INSERT INTO {SCHEMA}.account (name) VALUES (lower('Shadowed Co')) RETURNING sfid"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute(&format!(
            "BEGIN;
             UPDATE {SCHEMA}.account SET billingcity = lower('Brest') WHERE id = {id};
             INSERT INTO {SCHEMA}.account (name) VALUES (lower('Second Co'));
             COMMIT"
        ))
        .await
        .unwrap();
    client
        .execute(
            &format!("DELETE FROM {SCHEMA}.account WHERE sfid = lower($1)"),
            &[&created.to_lowercase()],
        )
        .await
        .ok();
    client
        .batch_execute(&format!(
            "DELETE FROM {SCHEMA}.account WHERE name = lower('Second Co')"
        ))
        .await
        .unwrap();
}

/// The property behind the exploits above, over every name a client can shadow: with all
/// of pg_catalog's functions, operators and base types shadowed by the client's own, writes
/// of every kind through the proxy (autocommit and explicit, simple and extended protocol,
/// INSERT … RETURNING, UPDATE, DELETE) never run a client-owned function while the origin
/// that gets writes past the capture triggers is in force.
#[tokio::test]
async fn no_client_function_runs_while_the_sync_origin_is_in_force() {
    let world = World::start(&["Account"], 10).await;
    let (role, client) = client_role(&world, true).await;
    let (id, _) = world.accounts(1).await.remove(0);
    let schema = format!("{role}_s");
    install_shadows(&client, &schema).await;
    every_kind_of_write(&client, id).await;

    let seen: Vec<(String, Option<String>)> = client
        .query(&format!("SELECT f, k FROM {schema}.loot"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert!(
        seen.iter().any(|(f, _)| f == "lower"),
        "the shadows were not in force: {seen:?}"
    );
    let under_origin: Vec<_> = seen
        .iter()
        .filter(|(_, k)| !matches!(k.as_deref(), None | Some("") | Some("proxy")))
        .collect();
    assert!(
        under_origin.is_empty(),
        "client functions ran under the sync origin: {under_origin:?}"
    );
    world.assert_mirror_equals_org("Account").await;
    drop(client);
    drop_role(&world, &role).await;
}
