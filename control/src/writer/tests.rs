//! The writer against a real PostgreSQL: the helpers its tests share, one module per part
//! of the contract.

use std::time::Duration;

use serde_json::json;
use sfpg_salesforce::Record;
use sfpg_testkit::TestDatabase;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::*;
use crate::mapping::ColumnType;
use crate::mirror;
use crate::plan::ObjectPlan;

pub(super) fn plan() -> ObjectPlan {
    ObjectPlan {
        object: "Account".to_owned(),
        schema: "acme".to_owned(),
        table: "account".to_owned(),
        fields: vec![
            MirroredField::new("Id", ColumnType::Varchar(18)),
            MirroredField::new("SystemModstamp", ColumnType::TimestampTz),
            MirroredField::new("IsDeleted", ColumnType::Boolean),
            MirroredField::new("Name", ColumnType::Varchar(20)),
            MirroredField::new(
                "AnnualRevenue",
                ColumnType::Numeric {
                    precision: 18,
                    scale: 2,
                },
            ),
            MirroredField::new("NumberOfEmployees", ColumnType::Integer),
            MirroredField::new("Founded__c", ColumnType::Date),
        ],
    }
}

pub(super) fn record(id: &str, stamp: &str, name: &str) -> Record {
    let value = json!({
        "attributes": {"type": "Account", "url": format!("/services/data/v62.0/sobjects/Account/{id}")},
        "Id": id, "SystemModstamp": stamp, "IsDeleted": false, "Name": name,
        "AnnualRevenue": 1.5e7, "NumberOfEmployees": 12, "Founded__c": "1999-12-31",
    });
    match value {
        serde_json::Value::Object(map) => map,
        _ => unreachable!(),
    }
}

pub(super) async fn mirror_table(db: &TestDatabase) -> Client {
    let mut client = db.connect().await;
    // The sync origin's key lives in the control schema.
    crate::apply_control_schema(&mut client).await.unwrap();
    let plan = plan();
    mirror::create_schema(&client, &plan.schema).await.unwrap();
    mirror::create_table(&client, &plan.schema, &plan.table, &plan.columns())
        .await
        .unwrap();
    client
}

pub(super) async fn write(
    client: &mut Client,
    records: &[Record],
    strategy: WriteStrategy,
) -> Upserted {
    let plan = plan();
    let rows = Rows::from_records("Account", plan.fields.iter().collect(), records).unwrap();
    let transaction = begin(client, Some(Duration::from_secs(2))).await.unwrap();
    let upserted = upsert(&transaction, &plan, &rows, strategy).await.unwrap();
    transaction.commit().await.unwrap();
    upserted
}

async fn names(client: &Client) -> Vec<(String, String, String)> {
    client
        .query(
            "SELECT sfid, name, systemmodstamp::text FROM acme.account ORDER BY sfid",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

pub(super) const A: &str = "001000000000001AAA";
pub(super) const B: &str = "001000000000002AAA";

mod concurrency;
mod copy;
mod deletes;
mod origin;
mod upserts;
