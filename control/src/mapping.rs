//! Salesforce field types to PostgreSQL column types: the design's mapping table, in code.
//! `docs/type-mapping.md` is the same table for people; the tests below check every row.

use std::fmt;

/// What `describe` says about a field, as far as its column type is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceField<'a> {
    /// The field's API name, e.g. `BillingCity`.
    pub name: &'a str,
    /// describe's `type`, e.g. `string`, `currency`, `reference`.
    pub field_type: &'a str,
    /// Maximum length in characters, for text types (0 when not applicable).
    pub length: u32,
    /// Total digits, for numeric types (0 when not applicable).
    pub precision: u32,
    /// Digits after the point, for numeric types.
    pub scale: u32,
}

/// A PostgreSQL column type sfpg creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Varchar(u32),
    Text,
    Boolean,
    Integer,
    BigInt,
    Numeric {
        precision: u32,
        scale: u32,
    },
    /// `numeric` without a declared precision, for numbers whose describe gives none.
    NumericAny,
    Date,
    TimestampTz,
    Time,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Varchar(n) => write!(f, "varchar({n})"),
            ColumnType::Text => f.write_str("text"),
            ColumnType::Boolean => f.write_str("boolean"),
            ColumnType::Integer => f.write_str("integer"),
            ColumnType::BigInt => f.write_str("bigint"),
            ColumnType::Numeric { precision, scale } => write!(f, "numeric({precision},{scale})"),
            ColumnType::NumericAny => f.write_str("numeric"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::TimestampTz => f.write_str("timestamptz"),
            ColumnType::Time => f.write_str("time"),
        }
    }
}

/// Reads a column type back, as sfpg renders it (`varchar(80)`, [`ColumnType`]'s
/// `Display`) or as PostgreSQL's `format_type` does (`character varying(80)`): the inverse
/// of the mapping's output, for a stored plan and for the table as PostgreSQL has it.
pub fn parse_column_type(text: &str) -> Option<ColumnType> {
    let text = text.trim().to_ascii_lowercase();
    let (name, args) = match text.split_once('(') {
        Some((name, rest)) => (name.trim(), Some(rest.strip_suffix(')')?)),
        None => (text.as_str(), None),
    };
    let numbers = match args {
        Some(args) => Some(
            args.split(',')
                .map(|n| n.trim().parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?,
        ),
        None => None,
    };
    Some(match (name, numbers.as_deref()) {
        ("varchar" | "character varying", Some([n])) => ColumnType::Varchar(*n),
        ("text", None) => ColumnType::Text,
        ("boolean", None) => ColumnType::Boolean,
        ("integer", None) => ColumnType::Integer,
        ("bigint", None) => ColumnType::BigInt,
        ("numeric", Some([precision, scale])) => ColumnType::Numeric {
            precision: *precision,
            scale: *scale,
        },
        ("numeric", Some([precision])) => ColumnType::Numeric {
            precision: *precision,
            scale: 0,
        },
        ("numeric", None) => ColumnType::NumericAny,
        ("date", None) => ColumnType::Date,
        ("timestamptz" | "timestamp with time zone", None) => ColumnType::TimestampTz,
        ("time" | "time without time zone", None) => ColumnType::Time,
        _ => return None,
    })
}

/// Serde for a [`ColumnType`] as its SQL text (`"varchar(40)"`), as stored in
/// `sfpg.objects.mirrored_fields`.
pub mod column_type_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{ColumnType, parse_column_type};

    pub fn serialize<S: Serializer>(value: &ColumnType, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ColumnType, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_column_type(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("{text:?} is not a column type sfpg creates"))
        })
    }
}

/// Where a field goes in the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    Column(ColumnType),
    /// Not mirrored, with the reason shown in status.
    LeftOut(&'static str),
}

/// PostgreSQL's largest `varchar(n)`; longer text fields become `text`.
const MAX_VARCHAR: u32 = 10_485_760;
/// PostgreSQL's largest numeric precision.
const MAX_NUMERIC_PRECISION: u32 = 1000;

pub fn map_field(field: &SourceField<'_>) -> Mapping {
    use ColumnType::*;
    let text = |length: u32| {
        if length == 0 || length > MAX_VARCHAR {
            Text
        } else {
            Varchar(length)
        }
    };
    let column = match field.field_type {
        "id" | "reference" => Varchar(18),
        "string" | "textarea" | "picklist" | "combobox" | "email" | "phone" | "url"
        | "encryptedstring" => text(field.length),
        // `;`-separated, exactly as the API sends it.
        "multipicklist" => Text,
        "boolean" => Boolean,
        "int" => Integer,
        "long" => BigInt,
        "double" | "currency" | "percent" => {
            let (precision, scale) = (field.precision, field.scale);
            if precision == 0 || precision > MAX_NUMERIC_PRECISION || scale > precision {
                NumericAny
            } else {
                Numeric { precision, scale }
            }
        }
        "date" => Date,
        "datetime" => TimestampTz,
        "time" => Time,
        "anyType" => Text,
        "base64" => return Mapping::LeftOut("base64 (binary) fields are not mirrored"),
        "address" | "location" => {
            return Mapping::LeftOut("compound field: its component fields are mirrored");
        }
        _ => return Mapping::LeftOut("field type not supported by the mirror"),
    };
    Mapping::Column(column)
}

/// The mirror column for a field: its lower-cased API name, except `Id`, which is `sfid`
/// because `id` is the local primary key.
pub fn column_name(field_name: &str) -> String {
    if field_name.eq_ignore_ascii_case("Id") {
        "sfid".to_owned()
    } else {
        field_name.to_ascii_lowercase()
    }
}

/// The mirror table for an object: its lower-cased API name (`Invoice__c` → `invoice__c`).
pub fn table_name(object_name: &str) -> String {
    object_name.to_ascii_lowercase()
}

/// Whether a column of type `from` can become `to` in place, without losing data
/// (`ALTER COLUMN … TYPE`). Anything else pauses the object.
pub fn can_widen(from: ColumnType, to: ColumnType) -> bool {
    use ColumnType::*;
    match (from, to) {
        _ if from == to => true,
        (Varchar(a), Varchar(b)) => b >= a,
        (Varchar(_), Text) => true,
        (Integer, BigInt) | (Integer | BigInt, NumericAny) => true,
        (Numeric { .. }, NumericAny) => true,
        (
            Numeric {
                precision: p1,
                scale: s1,
            },
            Numeric {
                precision: p2,
                scale: s2,
            },
        ) => s2 >= s1 && p2 - s2 >= p1 - s1,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ColumnType::*;

    fn map(field_type: &str, length: u32, precision: u32, scale: u32) -> Mapping {
        map_field(&SourceField {
            name: "F",
            field_type,
            length,
            precision,
            scale,
        })
    }

    /// One assertion per row of docs/type-mapping.md, in its order.
    #[test]
    fn every_row_of_the_mapping_table() {
        let column = |t| Mapping::Column(t);
        assert_eq!(map("id", 18, 0, 0), column(Varchar(18)));
        assert_eq!(map("reference", 18, 0, 0), column(Varchar(18)));
        assert_eq!(map("string", 80, 0, 0), column(Varchar(80)));
        assert_eq!(map("textarea", 32_000, 0, 0), column(Varchar(32_000)));
        assert_eq!(map("picklist", 40, 0, 0), column(Varchar(40)));
        assert_eq!(map("combobox", 255, 0, 0), column(Varchar(255)));
        assert_eq!(map("email", 80, 0, 0), column(Varchar(80)));
        assert_eq!(map("phone", 40, 0, 0), column(Varchar(40)));
        assert_eq!(map("url", 255, 0, 0), column(Varchar(255)));
        assert_eq!(map("encryptedstring", 175, 0, 0), column(Varchar(175)));
        assert_eq!(map("string", 0, 0, 0), column(Text));
        assert_eq!(map("textarea", MAX_VARCHAR + 1, 0, 0), column(Text));
        assert_eq!(map("multipicklist", 4099, 0, 0), column(Text));
        assert_eq!(map("boolean", 0, 0, 0), column(Boolean));
        assert_eq!(map("int", 0, 0, 0), column(Integer));
        assert_eq!(map("long", 0, 0, 0), column(BigInt));
        assert_eq!(
            map("double", 0, 18, 2),
            column(Numeric {
                precision: 18,
                scale: 2
            })
        );
        assert_eq!(
            map("currency", 0, 16, 2),
            column(Numeric {
                precision: 16,
                scale: 2
            })
        );
        assert_eq!(
            map("percent", 0, 5, 2),
            column(Numeric {
                precision: 5,
                scale: 2
            })
        );
        assert_eq!(map("double", 0, 0, 0), column(NumericAny));
        assert_eq!(map("date", 0, 0, 0), column(Date));
        assert_eq!(map("datetime", 0, 0, 0), column(TimestampTz));
        assert_eq!(map("time", 0, 0, 0), column(Time));
        assert_eq!(map("anyType", 0, 0, 0), column(Text));
        assert!(matches!(map("base64", 0, 0, 0), Mapping::LeftOut(_)));
        assert!(matches!(map("address", 0, 0, 0), Mapping::LeftOut(_)));
        assert!(matches!(map("location", 0, 0, 0), Mapping::LeftOut(_)));
        assert!(matches!(
            map("datacategorygroupreference", 0, 0, 0),
            Mapping::LeftOut(_)
        ));
    }

    #[test]
    fn names_follow_heroku_connect() {
        assert_eq!(column_name("Id"), "sfid");
        assert_eq!(column_name("BillingCity"), "billingcity");
        assert_eq!(column_name("Amount__c"), "amount__c");
        assert_eq!(column_name("SystemModstamp"), "systemmodstamp");
        assert_eq!(table_name("Invoice__c"), "invoice__c");
        assert_eq!(table_name("Account"), "account");
    }

    /// Every type the mapping creates reads back from its own text and from PostgreSQL's
    /// `format_type`; anything else is refused.
    #[test]
    fn column_types_round_trip_through_their_text() {
        let every = [
            Varchar(18),
            Varchar(10_485_760),
            Text,
            Boolean,
            Integer,
            BigInt,
            Numeric {
                precision: 16,
                scale: 2,
            },
            Numeric {
                precision: 1000,
                scale: 0,
            },
            NumericAny,
            Date,
            TimestampTz,
            Time,
        ];
        for column_type in every {
            let text = column_type.to_string();
            assert_eq!(parse_column_type(&text), Some(column_type), "{text}");
        }
        for (text, expected) in [
            ("character varying(80)", Varchar(80)),
            (
                "numeric(16,2)",
                Numeric {
                    precision: 16,
                    scale: 2,
                },
            ),
            (
                "numeric(18)",
                Numeric {
                    precision: 18,
                    scale: 0,
                },
            ),
            ("timestamp with time zone", TimestampTz),
            ("time without time zone", Time),
            (" TEXT ", Text),
        ] {
            assert_eq!(parse_column_type(text), Some(expected), "{text}");
        }
        for bad in [
            "jsonb",
            "varchar(x)",
            "numeric(1,2,3)",
            "varchar(18",
            "text(4)",
            "",
        ] {
            assert_eq!(parse_column_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn column_types_render_as_postgres_spells_them() {
        assert_eq!(Varchar(80).to_string(), "varchar(80)");
        assert_eq!(
            Numeric {
                precision: 16,
                scale: 2
            }
            .to_string(),
            "numeric(16,2)"
        );
        assert_eq!(TimestampTz.to_string(), "timestamptz");
    }

    #[test]
    fn widening_keeps_every_value() {
        assert!(can_widen(Varchar(80), Varchar(255)));
        assert!(!can_widen(Varchar(255), Varchar(80)));
        assert!(can_widen(Varchar(80), Text));
        assert!(can_widen(Integer, BigInt));
        assert!(can_widen(
            Numeric {
                precision: 16,
                scale: 2
            },
            Numeric {
                precision: 18,
                scale: 4
            }
        ));
        assert!(!can_widen(
            Numeric {
                precision: 18,
                scale: 2
            },
            Numeric {
                precision: 18,
                scale: 4
            }
        ));
        assert!(!can_widen(Text, Integer));
        assert!(!can_widen(Boolean, Varchar(10)));
        assert!(!can_widen(Date, TimestampTz));
    }
}
