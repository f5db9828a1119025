//! A batch's events written together: consecutive events on distinct records take one
//! statement per kind of write, and a record changed twice in a batch still ends at its
//! last version.

use serde_json::json;

use super::*;

/// Counts, by operation, the statements that write the mirror table.
const COUNT_STATEMENTS: &str = "
    CREATE TABLE public.statements (op text);
    CREATE FUNCTION public.count_statement() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO public.statements VALUES (TG_OP);
        RETURN NULL;
    END $$;
    CREATE TRIGGER count_statement AFTER INSERT OR UPDATE OR DELETE ON acme.account
        FOR EACH STATEMENT EXECUTE FUNCTION public.count_statement();";

/// The statements counted since the last call, by operation, and the count reset.
async fn statements(client: &tokio_postgres::Client) -> Vec<(String, i64)> {
    let counted = client
        .query(
            "SELECT op, count(*) FROM public.statements GROUP BY op ORDER BY op",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    client
        .batch_execute("TRUNCATE public.statements")
        .await
        .unwrap();
    counted
}

fn id(n: usize) -> String {
    format!("001{n:012}AAA")
}

/// One event per transaction, each of another record: `kind` of records `0..count`.
fn each_its_own(first_replay_id: i64, kind: ChangeKind, count: usize) -> Vec<Transaction> {
    (0..count)
        .map(|n| {
            let replay_id = first_replay_id + n as i64;
            let fields = json!({"Name": format!("N{n}"), "Phone": format!("{replay_id}")});
            Transaction {
                changes: vec![change(
                    replay_id,
                    &format!("t{replay_id}"),
                    kind,
                    &[&id(n)],
                    NOON + 1000,
                    fields,
                )],
            }
        })
        .collect()
}

#[tokio::test]
async fn events_on_distinct_records_take_one_statement_per_kind_of_write() {
    let db = TestDatabase::create().await;
    let mut client = mirror_with_org(&db).await;
    client.batch_execute(COUNT_STATEMENTS).await.unwrap();

    let created = apply(&mut client, &each_its_own(1, ChangeKind::Create, 300)).await;
    assert_eq!((created.events, created.written), (300, 300));
    // The upsert: one INSERT … ON CONFLICT DO UPDATE, which fires both statement triggers.
    assert_eq!(
        statements(&client).await,
        [("INSERT".to_owned(), 1), ("UPDATE".to_owned(), 1)]
    );

    let updated = apply(&mut client, &each_its_own(1001, ChangeKind::Update, 300)).await;
    assert_eq!((updated.events, updated.written), (300, 300));
    assert_eq!(statements(&client).await, [("UPDATE".to_owned(), 1)]);

    let deleted = apply(&mut client, &each_its_own(2001, ChangeKind::Delete, 300)).await;
    assert_eq!((deleted.events, deleted.written), (300, 300));
    assert_eq!(statements(&client).await, [("DELETE".to_owned(), 1)]);
    assert_eq!(rows(&client).await, Vec::<Vec<Option<String>>>::new());
}

#[tokio::test]
async fn a_record_changed_twice_in_a_batch_ends_at_its_last_version() {
    let db = TestDatabase::create().await;
    let mut client = mirror_with_org(&db).await;
    client.batch_execute(COUNT_STATEMENTS).await.unwrap();
    let create = |replay_id, id: &str, name: &str| {
        change(
            replay_id,
            &format!("t{replay_id}"),
            ChangeKind::Create,
            &[id],
            NOON,
            json!({"Name": name}),
        )
    };
    let update = |replay_id, id: &str, phone: &str| {
        change(
            replay_id,
            &format!("t{replay_id}"),
            ChangeKind::Update,
            &[id],
            NOON,
            json!({"Phone": phone}),
        )
    };
    let delete = |replay_id, id: &str| {
        change(
            replay_id,
            &format!("t{replay_id}"),
            ChangeKind::Delete,
            &[id],
            NOON,
            json!({}),
        )
    };
    // In one batch, all in the same second: A created, B created, A changed twice with B
    // between, B deleted and created again.
    let batch: Vec<Transaction> = [
        create(1, A, "Acme"),
        create(2, B, "Beta"),
        update(3, A, "first"),
        update(4, B, "b"),
        update(5, A, "second"),
        delete(6, B),
        create(7, B, "Beta again"),
    ]
    .into_iter()
    .map(|change| Transaction {
        changes: vec![change],
    })
    .collect();
    let applied = apply(&mut client, &batch).await;
    assert_eq!(applied.events, 7);
    assert_eq!(applied.saved, Some(7));
    let stamp = "2024-03-01 12:00:00+00";
    assert_eq!(
        rows(&client).await,
        [
            vec![s(A), s("Acme"), None, s("second"), s(stamp), s("false")],
            vec![s(B), s("Beta again"), None, None, s(stamp), s("false")],
        ]
    );
    // Four segments, each closed by an event on a record already in it: {create A, B},
    // {update A, B}, {update A, delete B}, {create B}. An upsert fires the INSERT and the
    // UPDATE statement triggers: 2 + 1 + 2 + 2, where one statement an event took 10.
    let written: i64 = statements(&client).await.iter().map(|(_, n)| n).sum();
    assert_eq!(written, 7);
}
