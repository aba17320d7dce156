//! The JSON Schema of the workflow language, generated from the serde types.

use serde_json::Value;

use crate::definition::Definition;

/// The JSON Schema (draft 2020-12) of a workflow file, generated with
/// `schemars` from [`Definition`], the same types the parser uses, so the two
/// cannot drift apart.
///
/// `docs/workflow.schema.json` is this value pretty-printed; workflow files
/// point editors at it with `"$schema"`. The schema checks shape only (keys,
/// types, required fields); what it cannot say, such as whether a stage a
/// transition names exists, is the validator's job.
pub fn json_schema() -> Value {
    schemars::schema_for!(Definition).to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_describes_a_definition() {
        let schema = json_schema();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["title"], "strive workflow definition");
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        for key in ["id", "title", "stages"] {
            assert!(required.contains(&Value::from(key)), "{key} is required");
        }
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(json_schema(), schema, "generation is deterministic");
    }
}
