//! The ledger table as the core template of the `local` environment defines it, created
//! in an emulator, so tests and templates cannot drift apart.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use microprocess_kit::config::Project;
use microprocess_kit::plan::StackKind;
use microprocess_kit::render::Renderer;
use serde_json::Value;

/// Logical id of the ledger table in `templates/core.yaml`.
pub const LEDGER_TABLE_RESOURCE: &str = "LedgerTable";

/// Properties of the template's table that change nothing an emulated test can see.
const IGNORED_PROPERTIES: [&str; 4] = [
    "PointInTimeRecoverySpecification",
    "SSESpecification",
    "DeletionProtectionEnabled",
    "Tags",
];

/// The parts of the table definition a test table needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDefinition {
    pub name: String,
    pub attributes: Vec<AttributeDefinition>,
    pub key_schema: Vec<KeySchemaElement>,
    pub global_secondary_indexes: Vec<GlobalSecondaryIndex>,
    pub billing_mode: BillingMode,
    /// The TTL attribute, when TTL is enabled.
    pub ttl_attribute: Option<String>,
}

/// The `Properties` of the ledger table in the rendered core stack of `environment`.
pub fn rendered_ledger_table(environment: &str) -> Value {
    let root = crate::root();
    let project = Project {
        root: root.clone(),
        host_arch: "x86_64".into(),
    };
    let env = project.load(environment).unwrap_or_else(|d| panic!("{d}"));
    let renderer = Renderer::load(&root.join("templates")).unwrap_or_else(|e| panic!("{e}"));
    let stacks = renderer
        .render_environment(&env)
        .unwrap_or_else(|e| panic!("{e}"));
    let core = stacks
        .iter()
        .find(|s| s.plan.kind == StackKind::Core)
        .unwrap_or_else(|| panic!("environment `{environment}` renders no core stack"));
    core.template["Resources"][LEDGER_TABLE_RESOURCE]["Properties"].clone()
}

/// The ledger table of the `local` environment's core template.
pub fn ledger_table_definition() -> TableDefinition {
    parse_table(&rendered_ledger_table("local"))
}

/// Reads an `AWS::DynamoDB::Table`'s properties; panics on a property the harness does
/// not know, so a template change cannot be silently ignored by the tests.
pub fn parse_table(properties: &Value) -> TableDefinition {
    let object = properties
        .as_object()
        .unwrap_or_else(|| panic!("table properties are not an object: {properties}"));
    for key in object.keys() {
        let known = [
            "TableName",
            "BillingMode",
            "AttributeDefinitions",
            "KeySchema",
            "GlobalSecondaryIndexes",
            "TimeToLiveSpecification",
        ];
        assert!(
            known.contains(&key.as_str()) || IGNORED_PROPERTIES.contains(&key.as_str()),
            "the ledger table has property `{key}`, which the test harness does not create; \
             extend tests/support/ledger_table.rs"
        );
    }
    let ttl = &properties["TimeToLiveSpecification"];
    TableDefinition {
        name: text(&properties["TableName"], "TableName"),
        attributes: list(&properties["AttributeDefinitions"])
            .iter()
            .map(|a| {
                AttributeDefinition::builder()
                    .attribute_name(text(&a["AttributeName"], "AttributeName"))
                    .attribute_type(ScalarAttributeType::from(
                        text(&a["AttributeType"], "AttributeType").as_str(),
                    ))
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect(),
        key_schema: key_schema(&properties["KeySchema"]),
        global_secondary_indexes: list(&properties["GlobalSecondaryIndexes"])
            .iter()
            .map(|index| {
                let projection = &index["Projection"];
                GlobalSecondaryIndex::builder()
                    .index_name(text(&index["IndexName"], "IndexName"))
                    .set_key_schema(Some(key_schema(&index["KeySchema"])))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::from(
                                text(&projection["ProjectionType"], "ProjectionType").as_str(),
                            ))
                            .set_non_key_attributes(projection["NonKeyAttributes"].as_array().map(
                                |names| names.iter().map(|n| text(n, "NonKeyAttributes")).collect(),
                            ))
                            .build(),
                    )
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect(),
        billing_mode: BillingMode::from(
            properties["BillingMode"].as_str().unwrap_or("PROVISIONED"),
        ),
        ttl_attribute: (ttl["Enabled"] == Value::Bool(true)).then(|| {
            text(
                &ttl["AttributeName"],
                "TimeToLiveSpecification.AttributeName",
            )
        }),
    }
}

fn text(value: &Value, what: &str) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("`{what}` is not a string in the rendered table: {value}"))
        .to_owned()
}

fn list(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
}

fn key_schema(value: &Value) -> Vec<KeySchemaElement> {
    list(value)
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(text(&k["AttributeName"], "AttributeName"))
                .key_type(KeyType::from(text(&k["KeyType"], "KeyType").as_str()))
                .build()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

/// Creates the `local` ledger table (keys, index, TTL) at the endpoint of `config`;
/// returns its name.
pub async fn create_ledger_table(config: &SdkConfig) -> String {
    let definition = ledger_table_definition();
    create_table(&Client::new(config), &definition).await;
    definition.name
}

/// Creates `definition` and enables its TTL.
pub async fn create_table(client: &Client, definition: &TableDefinition) {
    let mut create = client
        .create_table()
        .table_name(&definition.name)
        .set_attribute_definitions(Some(definition.attributes.clone()))
        .set_key_schema(Some(definition.key_schema.clone()))
        .billing_mode(definition.billing_mode.clone());
    if !definition.global_secondary_indexes.is_empty() {
        create =
            create.set_global_secondary_indexes(Some(definition.global_secondary_indexes.clone()));
    }
    create
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot create table `{}`: {e:?}", definition.name));
    if let Some(attribute) = &definition.ttl_attribute {
        client
            .update_time_to_live()
            .table_name(&definition.name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attribute)
                    .enabled(true)
                    .build()
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("cannot enable TTL on `{}`: {e:?}", definition.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_ledger_table_matches_the_documented_layout() {
        let table = ledger_table_definition();
        assert!(table.name.ends_with("-ledger"), "{}", table.name);
        let keys: Vec<(&str, &KeyType)> = table
            .key_schema
            .iter()
            .map(|k| (k.attribute_name(), k.key_type()))
            .collect();
        assert_eq!(keys, [("pk", &KeyType::Hash), ("sk", &KeyType::Range)]);
        let index = &table.global_secondary_indexes[0];
        assert_eq!(index.index_name(), "runs-by-state");
        let index_keys: Vec<&str> = index
            .key_schema()
            .iter()
            .map(|k| k.attribute_name())
            .collect();
        assert_eq!(index_keys, ["state_pk", "state_sk"]);
        assert_eq!(
            index.projection().and_then(|p| p.projection_type()),
            Some(&ProjectionType::All)
        );
        assert_eq!(table.ttl_attribute.as_deref(), Some("expires_at"));
        assert_eq!(table.billing_mode, BillingMode::PayPerRequest);
        for attribute in &table.attributes {
            assert_eq!(attribute.attribute_type(), &ScalarAttributeType::S);
        }
    }

    #[test]
    #[should_panic(expected = "does not create")]
    fn an_unknown_table_property_stops_the_tests() {
        parse_table(&serde_json::json!({
            "TableName": "t",
            "StreamSpecification": {"StreamViewType": "NEW_IMAGE"}
        }));
    }
}
