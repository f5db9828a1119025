//! The object definitions compiled into the binary: the standard objects the emulated org
//! starts with (Account, Contact, Lead, Opportunity, User, Product2) and the custom
//! `Invoice__c`, and the platform event `Order_Event__e`. The files live in `emulator/objects/`, one per object.

use super::{DefinitionError, ObjectDef};

const FILES: [&str; 8] = [
    include_str!("../../objects/User.json"),
    include_str!("../../objects/Account.json"),
    include_str!("../../objects/Contact.json"),
    include_str!("../../objects/Lead.json"),
    include_str!("../../objects/Opportunity.json"),
    include_str!("../../objects/Product2.json"),
    include_str!("../../objects/Invoice__c.json"),
    include_str!("../../objects/Order_Event__e.json"),
];

/// Every bundled definition, loaded and completed.
pub fn bundled_objects() -> Result<Vec<ObjectDef>, DefinitionError> {
    FILES
        .iter()
        .map(|text| ObjectDef::from_json(text))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FieldType;

    #[test]
    fn every_bundled_definition_loads() {
        let objects = bundled_objects().unwrap();
        let prefixes: Vec<(&str, &str)> = objects
            .iter()
            .map(|o| (o.name.as_str(), o.key_prefix.as_str()))
            .collect();
        assert_eq!(
            prefixes,
            [
                ("User", "005"),
                ("Account", "001"),
                ("Contact", "003"),
                ("Lead", "00Q"),
                ("Opportunity", "006"),
                ("Product2", "01t"),
                ("Invoice__c", "a01"),
                ("Order_Event__e", "e01")
            ]
        );
        for object in &objects {
            let least = if object.is_platform_event() { 5 } else { 18 };
            assert!(
                (least..=60).contains(&object.fields.len()),
                "{} has {} fields",
                object.name,
                object.fields.len()
            );
            for field in &object.fields {
                for target in &field.reference_to {
                    assert!(
                        objects.iter().any(|o| &o.name == target),
                        "{}.{} points to an undefined {target}",
                        object.name,
                        field.name
                    );
                }
            }
        }
    }

    #[test]
    fn invoice_has_what_the_spec_asks_for() {
        let objects = bundled_objects().unwrap();
        let invoice = objects.iter().find(|o| o.name == "Invoice__c").unwrap();
        let field = |name: &str| invoice.field(name).unwrap().1;
        assert_eq!(
            field("Account__c").relationship_name.as_deref(),
            Some("Account__r")
        );
        assert!(field("Total__c").calculated && field("Total__c").formula.is_some());
        assert!(!field("Total__c").createable && !field("Total__c").updateable);
        assert!(field("Account_Name__c").formula.is_some());
        assert!(field("Status__c").restricted_picklist);
        let ext = field("External_Id__c");
        assert!(ext.external_id && ext.unique && ext.id_lookup && ext.length == 40);
        assert!(field("Name").auto_number && !field("Name").createable);
        assert_eq!(field("Tax__c").field_type, FieldType::Percent);
        assert_eq!(invoice.validation_rules.len(), 1);
    }

    #[test]
    fn addresses_are_read_only_compounds_of_their_components() {
        let objects = bundled_objects().unwrap();
        let account = objects.iter().find(|o| o.name == "Account").unwrap();
        let (_, address) = account.field("BillingAddress").unwrap();
        assert_eq!(address.field_type, FieldType::Address);
        assert!(!address.createable && !address.updateable && !address.filterable);
        let components: Vec<&str> = account
            .fields
            .iter()
            .filter(|f| f.compound_field_name.as_deref() == Some("BillingAddress"))
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(components.len(), 8);
        assert!(components.contains(&"BillingPostalCode"));
        let user = objects.iter().find(|o| o.name == "User").unwrap();
        assert!(user.system.is_deleted.is_none() && !user.deletable);
    }
}
