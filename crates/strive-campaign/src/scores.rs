//! Aggregates of a unit's evaluations, as the guards compute them: the mean
//! of each criterion, the share satisfied, the number of evaluators.
//!
//! The criteria are read from the workflow definition, not hard-coded: they
//! are the numeric fields of the `evaluations` map's entries (the "five
//! good" for organisations, the "five take the lead" for members), with
//! their labels.

use serde::Serialize;
use serde_json::Value;
use strive_core::{Definition, ValueType};

/// The variable that holds one entry per evaluator.
pub(crate) const EVALUATIONS: &str = "evaluations";
/// The boolean field of an entry that says whether the evaluator is
/// satisfied overall.
const SATISFIED: &str = "satisfied";

/// A unit's evaluation results.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Scores {
    /// How many evaluators are counted (each once).
    pub evaluators: usize,
    /// The share of them satisfied overall, 0 to 1.
    pub satisfied_share: Option<f64>,
    /// Each criterion's mean, in the definition's order.
    pub criteria: Vec<CriterionMean>,
    /// The mean of the criteria's means.
    pub overall: Option<f64>,
}

/// One criterion's mean score.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CriterionMean {
    /// The field's id, such as `leadership` or `study`.
    pub id: String,
    /// Its Chinese label.
    pub zh: String,
    /// Its English label.
    pub en: String,
    /// The mean, rounded to two decimals; none without evaluations.
    pub mean: Option<f64>,
}

/// The criteria of one workflow.
#[derive(Debug, Clone)]
pub(crate) struct Criteria {
    fields: Vec<(String, String, String)>,
    has_satisfied: bool,
}

impl Criteria {
    /// The criteria of `definition`, if it records evaluations.
    pub(crate) fn of(definition: &Definition) -> Option<Criteria> {
        let variable = definition.data.iter().find(|f| f.id == EVALUATIONS)?;
        let fields = variable.spec.values.as_ref()?.spec.fields.as_ref()?;
        let mut criteria = Criteria {
            fields: Vec::new(),
            has_satisfied: false,
        };
        for field in fields {
            match field.spec.ty {
                ValueType::Integer | ValueType::Number => {
                    let (zh, en) = crate::report::labels(field.label.as_ref(), &field.id);
                    criteria.fields.push((field.id.clone(), zh, en));
                }
                ValueType::Boolean if field.id == SATISFIED => criteria.has_satisfied = true,
                _ => {}
            }
        }
        (!criteria.fields.is_empty()).then_some(criteria)
    }

    /// The aggregates of `evaluations` (a map from evaluator to entry).
    pub(crate) fn scores(&self, evaluations: Option<&Value>) -> Scores {
        let entries: Vec<&Value> = match evaluations {
            Some(Value::Object(map)) => map.values().collect(),
            _ => Vec::new(),
        };
        let mut criteria = Vec::with_capacity(self.fields.len());
        let mut means = Vec::with_capacity(self.fields.len());
        for (id, zh, en) in &self.fields {
            let values: Vec<f64> = entries
                .iter()
                .filter_map(|entry| entry.get(id).and_then(Value::as_f64))
                .collect();
            let mean = mean(&values);
            if let Some(mean) = mean {
                means.push(mean);
            }
            criteria.push(CriterionMean {
                id: id.clone(),
                zh: zh.clone(),
                en: en.clone(),
                mean: mean.map(round2),
            });
        }
        let satisfied_share = (self.has_satisfied && !entries.is_empty()).then(|| {
            let satisfied = entries
                .iter()
                .filter(|entry| entry.get(SATISFIED).and_then(Value::as_bool) == Some(true))
                .count();
            round2(satisfied as f64 / entries.len() as f64)
        });
        Scores {
            evaluators: entries.len(),
            satisfied_share,
            overall: mean(&means).map(round2),
            criteria,
        }
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Two decimals are what a person reads, and they keep JSON and snapshots
/// free of float noise.
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn means_and_shares_follow_the_entries() {
        let definition: Definition = serde_json::from_value(json!({
            "id": "x", "title": "x",
            "data": [{"id": "evaluations", "type": "map", "values": {"type": "object", "fields": [
                {"id": "study", "type": "integer", "label": {"zh": "学习", "en": "Study"}},
                {"id": "service", "type": "integer"},
                {"id": "satisfied", "type": "boolean"},
                {"id": "remarks", "type": "string"}
            ]}}],
            "stages": [{"id": "a", "kind": "initial"}]
        }))
        .expect("a definition");
        let criteria = Criteria::of(&definition).expect("criteria");
        let scores = criteria.scores(Some(&json!({
            "ann": {"study": 90, "service": 80, "satisfied": true},
            "bob": {"study": 81, "service": 70, "satisfied": false},
            "cat": {"study": 80, "service": 75, "satisfied": true}
        })));
        assert_eq!(scores.evaluators, 3);
        assert_eq!(scores.criteria[0].mean, Some(83.67));
        assert_eq!(scores.criteria[0].zh, "学习");
        assert_eq!(scores.criteria[1].mean, Some(75.0));
        assert_eq!(scores.satisfied_share, Some(0.67));
        assert_eq!(scores.overall, Some(79.33));
        let empty = criteria.scores(None);
        assert_eq!((empty.evaluators, empty.overall), (0, None));
    }
}
