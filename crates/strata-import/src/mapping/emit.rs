//! Running one emit of a mapping over its records: the `where` filter and the body
//! through the jq worker in batches, then each record's keys, with conflicts between
//! emits found key by key.

use std::collections::BTreeMap;

use serde_json::Value;
use strata_core::key::encode_segment;

use super::{stored_text, text_of, Body, Defect, Emit, Mapping, Part, Record, Slot};

impl Mapping {
    /// Runs one emit over its records: the jq expressions of many records per hand-over
    /// to the jq worker, then each record's keys in order. A record's own failure is a
    /// defect of its file; an expression stopped by a limit ends the run (`Err`).
    pub(super) fn emit_all(
        &self,
        emit: &Emit,
        records: &[Record],
        out: &mut BTreeMap<String, Slot>,
        defects: &mut Vec<Defect>,
    ) -> Result<(), Defect> {
        let what = format!("emit #{}", emit.index + 1);
        let stopped = |records: &[&Record], s: strata_jq::Stopped| Defect {
            file: records
                .get(s.index)
                .map(|r| r.file.clone())
                .unwrap_or_default(),
            problem: format!("{what}: {}", s.message),
        };
        // Each defect with its record's place, so they are reported in record order.
        let mut found: Vec<(usize, Defect)> = Vec::new();
        let mut kept: Vec<(usize, &Record)> = records.iter().enumerate().collect();
        if let Some(filter) = &emit.filter {
            let inputs: Vec<&Value> = kept.iter().map(|(_, r)| &r.value).collect();
            let keeps = filter
                .run_many(&inputs, None)
                .map_err(|s| stopped(&kept.iter().map(|(_, r)| *r).collect::<Vec<_>>(), s))?;
            let mut still = Vec::with_capacity(kept.len());
            for ((at, r), keep) in kept.into_iter().zip(keeps) {
                match keep {
                    Ok(keep)
                        if keep
                            .first()
                            .is_some_and(|v| !matches!(v, Value::Null | Value::Bool(false))) =>
                    {
                        still.push((at, r))
                    }
                    Ok(_) => {}
                    Err(e) => found.push((
                        at,
                        Defect {
                            file: r.file.clone(),
                            problem: format!("{what}: {e}"),
                        },
                    )),
                }
            }
            kept = still;
        }
        let jq = match &emit.body {
            Body::Value(jq) | Body::Fields(jq) => jq,
        };
        let inputs: Vec<&Value> = kept.iter().map(|(_, r)| &r.value).collect();
        let bodies = jq
            .run_many(&inputs, None)
            .map_err(|s| stopped(&kept.iter().map(|(_, r)| *r).collect::<Vec<_>>(), s))?;
        for ((at, r), body) in kept.into_iter().zip(bodies) {
            let result = body
                .map_err(|e| format!("{what}: {e}"))
                .and_then(|values| self.emit_record(emit, r, values, out));
            if let Err(problem) = result {
                found.push((
                    at,
                    Defect {
                        file: r.file.clone(),
                        problem,
                    },
                ));
            }
        }
        found.sort_by_key(|(at, _)| *at);
        defects.extend(found.into_iter().map(|(_, d)| d));
        Ok(())
    }

    /// Writes one record's keys from the outputs of its emit's body.
    fn emit_record(
        &self,
        emit: &Emit,
        record: &Record,
        values: Vec<Value>,
        out: &mut BTreeMap<String, Slot>,
    ) -> Result<(), String> {
        let what = format!("emit #{}", emit.index + 1);
        let mut path = String::new();
        for segment in &emit.at {
            path.push('/');
            let mut text = String::new();
            for part in segment {
                match part {
                    Part::Lit(l) => text.push_str(l),
                    Part::Var(v) => {
                        text.push_str(&record.value.get(v).and_then(text_of).ok_or_else(|| {
                            format!("{what}: the key pattern needs {v:?}, which this record lacks")
                        })?)
                    }
                }
            }
            path.push_str(&encode_segment(&text));
        }
        let mut put = |key: String, value: String, object: &str| -> Result<(), String> {
            match out.get(&key) {
                Some(slot) if slot.value != value => Err(format!(
                    "{what} writes {key} = {value:?}, but {} wrote {:?} there",
                    slot.by, slot.value
                )),
                _ => {
                    let by = format!("{what} ({})", record.file);
                    out.insert(
                        key,
                        Slot {
                            value,
                            by,
                            object: object.to_owned(),
                            entity: emit.pattern.clone(),
                        },
                    );
                    Ok(())
                }
            }
        };
        match &emit.body {
            Body::Value(_) => {
                if let Some(text) = values.first().and_then(stored_text) {
                    put(path.clone(), text, &path)?;
                }
            }
            Body::Fields(_) => {
                for object in values {
                    let Value::Object(fields) = object else {
                        // The kind only: the value may be a secret.
                        let kind = match object {
                            Value::Null => "null",
                            Value::Bool(_) => "a boolean",
                            Value::Number(_) => "a number",
                            Value::String(_) => "a string",
                            _ => "an array",
                        };
                        return Err(format!(
                            "{what}: `fields` must produce an object, not {kind}"
                        ));
                    };
                    for (name, value) in fields {
                        if let Some(text) = stored_text(&value) {
                            put(format!("{path}/{}", encode_segment(&name)), text, &path)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
