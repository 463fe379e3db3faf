//! Expressions in a definition: `Get`, `Std:Join`, `Std:JsonGet`, and Condition checks.

use serde_json::Value;

/// Execution variables a definition may `Get`.
pub const EXECUTION_VARIABLES: [&str; 6] =
    ["PipelineExecutionId", "PipelineExecutionArn", "PipelineName", "PipelineArn", "StartDateTime", "CurrentDateTime"];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExprError {
    #[error("`{path}`: {message}")]
    Invalid { path: String, message: String },
    #[error("`{get}`: {message}")]
    Unresolved { get: String, message: String },
}

/// One step of a property path: `.Name`, `['key']` or `[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Field(String),
    Key(String),
    Index(usize),
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Field(name) => write!(f, ".{name}"),
            Self::Key(key) => write!(f, "['{key}']"),
            Self::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// What a `Get` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Parameter(String),
    Execution(String),
    ExperimentConfig(String),
    /// `Steps.S.PropertyFiles.F`
    PropertyFile {
        step: String,
        file: String,
    },
    /// `Steps.S.<path>`
    Property {
        step: String,
        path: Vec<Segment>,
    },
}

/// Parse `a.b['k'][0].c` into segments (used for property paths and JsonGet paths).
pub fn parse_path(text: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut expect_name = true;
    while i < bytes.len() {
        match bytes[i] {
            b'.' => {
                if expect_name {
                    return Err(format!("an empty name before position {i}"));
                }
                expect_name = true;
                i += 1;
            }
            b'[' => {
                let close = text[i..].find(']').ok_or_else(|| format!("an unclosed `[` at position {i}"))? + i;
                let inner = &text[i + 1..close];
                let quoted = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
                match quoted {
                    Some(key) => segments.push(Segment::Key(key.to_string())),
                    None => segments.push(Segment::Index(
                        inner.parse().map_err(|_| format!("`[{inner}]` is neither an index nor a quoted key"))?,
                    )),
                }
                expect_name = false;
                i = close + 1;
            }
            _ => {
                let end = text[i..].find(['.', '[']).map_or(text.len(), |at| at + i);
                segments.push(Segment::Field(text[i..end].to_string()));
                expect_name = false;
                i = end;
            }
        }
    }
    if expect_name && !text.is_empty() {
        return Err("the path ends with `.`".into());
    }
    if segments.is_empty() {
        return Err("the path is empty".into());
    }
    Ok(segments)
}

/// Parse the string of a `Get`.
pub fn parse_reference(get: &str) -> Result<Reference, String> {
    let (root, rest) = get.split_once('.').ok_or("expected `Parameters.X`, `Execution.X` or `Steps.S.<property>`")?;
    match root {
        "Parameters" => Ok(Reference::Parameter(rest.to_string())),
        "Execution" => Ok(Reference::Execution(rest.to_string())),
        "PipelineExperimentConfig" => Ok(Reference::ExperimentConfig(rest.to_string())),
        "Steps" => {
            let end = rest.find(['.', '[']).ok_or("a step reference needs a property after the step name")?;
            let step = &rest[..end];
            let path_text = rest[end..].strip_prefix('.').unwrap_or(&rest[end..]);
            let segments = parse_path(path_text)?;
            if let [Segment::Field(first), Segment::Field(file)] = segments.as_slice()
                && first == "PropertyFiles"
            {
                return Ok(Reference::PropertyFile { step: step.to_string(), file: file.clone() });
            }
            Ok(Reference::Property { step: step.to_string(), path: segments })
        }
        other => Err(format!("`{other}` is not one of Parameters, Execution, PipelineExperimentConfig, Steps")),
    }
}

/// Walk a JSON value along a path.
pub fn walk<'v>(mut value: &'v Value, path: &[Segment]) -> Option<&'v Value> {
    for segment in path {
        value = match segment {
            Segment::Field(name) | Segment::Key(name) => value.get(name)?,
            Segment::Index(i) => value.get(*i)?,
        };
    }
    Some(value)
}

/// Values an expression needs from the running pipeline.
pub trait Scope {
    fn get(&self, reference: &Reference) -> Result<Value, String>;
    /// The JSON document of a property file.
    fn property_file(&self, step: &str, file: &str) -> Result<Value, String>;
    /// The JSON document stored at an S3 URI (`Std:JsonGet` with `S3Uri`).
    fn json_object(&self, uri: &str) -> Result<Value, String>;
    /// The scope a `Std:JsonGet` S3Uri is resolved in: the object read must be the real one,
    /// even where this scope masks values (cache keys).
    fn unmasked(&self) -> &dyn Scope;
}

/// Visit every expression in a JSON tree (for lint): each `Get` string with its JSON path,
/// and each `Std:JsonGet` property-file `Get` and path.
pub fn visit_gets(value: &Value, path: &str, visit: &mut dyn FnMut(&str, &str)) {
    match value {
        Value::Object(map) => {
            if map.len() == 1
                && let Some(Value::String(get)) = map.get("Get")
            {
                visit(get, &format!("{path}.Get"));
                return;
            }
            for (key, inner) in map {
                // Branch steps are visited as steps of their own.
                if key == "IfSteps" || key == "ElseSteps" {
                    continue;
                }
                visit_gets(inner, &format!("{path}.{key}"), visit);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                visit_gets(inner, &format!("{path}[{i}]"), visit);
            }
        }
        _ => {}
    }
}

/// Resolve every expression in `value`.
pub fn resolve(value: &Value, scope: &dyn Scope, path: &str) -> Result<Value, ExprError> {
    match value {
        Value::Object(map) if map.len() == 1 => {
            let (key, inner) = map.iter().next().expect("one entry");
            match key.as_str() {
                "Get" => {
                    let get = inner.as_str().ok_or_else(|| invalid(path, "`Get` takes a string"))?;
                    let reference = parse_reference(get).map_err(|m| invalid(path, &m))?;
                    scope.get(&reference).map_err(|message| ExprError::Unresolved { get: get.to_string(), message })
                }
                "Std:Join" => {
                    let on = inner.get("On").and_then(Value::as_str).unwrap_or("");
                    let values = inner
                        .get("Values")
                        .and_then(Value::as_array)
                        .ok_or_else(|| invalid(path, "`Std:Join` needs a `Values` list"))?;
                    let mut parts = Vec::with_capacity(values.len());
                    for (i, v) in values.iter().enumerate() {
                        parts.push(to_text(&resolve(v, scope, &format!("{path}.Std:Join.Values[{i}]"))?));
                    }
                    Ok(Value::String(parts.join(on)))
                }
                "Std:JsonGet" => json_get(inner, scope, path),
                _ => Ok(Value::Object(
                    [(key.clone(), resolve(inner, scope, &format!("{path}.{key}"))?)].into_iter().collect(),
                )),
            }
        }
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (key, inner) in map {
                // Branch steps resolve when they run, not with their Condition.
                if key == "IfSteps" || key == "ElseSteps" {
                    out.insert(key.clone(), inner.clone());
                    continue;
                }
                out.insert(key.clone(), resolve(inner, scope, &format!("{path}.{key}"))?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| resolve(v, scope, &format!("{path}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

fn json_get(inner: &Value, scope: &dyn Scope, path: &str) -> Result<Value, ExprError> {
    let json_path =
        inner.get("Path").and_then(Value::as_str).ok_or_else(|| invalid(path, "`Std:JsonGet` needs a `Path`"))?;
    let segments = parse_path(json_path).map_err(|m| invalid(path, &format!("JsonGet path `{json_path}`: {m}")))?;
    if let Some(uri) = inner.get("S3Uri") {
        return json_get_object(uri, scope, path, json_path, &segments);
    }
    let file_get = inner.get("PropertyFile").and_then(|p| p.get("Get")).and_then(Value::as_str).ok_or_else(|| {
        invalid(path, "`Std:JsonGet` needs `PropertyFile: {\"Get\": \"Steps.S.PropertyFiles.F\"}` or an `S3Uri`")
    })?;
    let Ok(Reference::PropertyFile { step, file }) = parse_reference(file_get) else {
        return Err(invalid(path, &format!("`{file_get}` does not name a property file (Steps.S.PropertyFiles.F)")));
    };
    let unresolved = |message: String| ExprError::Unresolved { get: format!("{file_get} {json_path}"), message };
    let document = scope.property_file(&step, &file).map_err(unresolved)?;
    walk(&document, &segments)
        .cloned()
        .ok_or_else(|| unresolved(format!("property file {file} of step {step} has nothing at `{json_path}`")))
}

/// `Std:JsonGet` with `S3Uri`: the JSON object stored there (the URI may itself be an expression).
fn json_get_object(
    uri: &Value,
    scope: &dyn Scope,
    path: &str,
    json_path: &str,
    segments: &[Segment],
) -> Result<Value, ExprError> {
    let scope = scope.unmasked();
    let uri = match resolve(uri, scope, &format!("{path}.Std:JsonGet.S3Uri"))? {
        Value::String(uri) => uri,
        other => return Err(invalid(path, &format!("`Std:JsonGet` S3Uri is not a string: {other}"))),
    };
    let unresolved = |message: String| ExprError::Unresolved { get: format!("{uri} {json_path}"), message };
    let document = scope.json_object(&uri).map_err(unresolved)?;
    walk(&document, segments).cloned().ok_or_else(|| unresolved(format!("{uri} has nothing at `{json_path}`")))
}

fn invalid(path: &str, message: &str) -> ExprError {
    ExprError::Invalid { path: path.to_string(), message: message.to_string() }
}

/// A value as text, as `Std:Join` renders it.
pub fn to_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Evaluate resolved Conditions (all must hold).
pub fn conditions_hold(conditions: &[Value]) -> Result<bool, String> {
    for condition in conditions {
        if !condition_holds(condition)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn condition_holds(condition: &Value) -> Result<bool, String> {
    let kind = condition.get("Type").and_then(Value::as_str).ok_or("a condition needs a Type")?;
    let side = |name: &str| condition.get(name).ok_or_else(|| format!("{kind} needs {name}"));
    match kind {
        "Equals" => Ok(equal(side("LeftValue")?, side("RightValue")?)),
        "GreaterThan" | "GreaterThanOrEqualTo" | "LessThan" | "LessThanOrEqualTo" => {
            let (left, right) = (side("LeftValue")?, side("RightValue")?);
            let ordering = compare(left, right).ok_or_else(|| format!("{kind}: cannot compare {left} with {right}"))?;
            Ok(match kind {
                "GreaterThan" => ordering.is_gt(),
                "GreaterThanOrEqualTo" => ordering.is_ge(),
                "LessThan" => ordering.is_lt(),
                _ => ordering.is_le(),
            })
        }
        "In" => {
            let query = side("QueryValue")?;
            let values = side("Values")?.as_array().ok_or("In needs a Values list")?;
            Ok(values.iter().any(|v| equal(query, v)))
        }
        "Not" => Ok(!condition_holds(side("Condition")?)?),
        "Or" => {
            let inner = side("Conditions")?.as_array().ok_or("Or needs a Conditions list")?;
            for c in inner {
                if condition_holds(c)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        other => Err(format!("unknown condition type `{other}`")),
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) if a.is_number() || b.is_number() => x == y,
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) if number(a).is_none() || number(b).is_none() => Some(x.cmp(y)),
        _ => number(a)?.partial_cmp(&number(b)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_and_references() {
        assert_eq!(
            parse_path("ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri").unwrap(),
            vec![
                Segment::Field("ProcessingOutputConfig".into()),
                Segment::Field("Outputs".into()),
                Segment::Key("train".into()),
                Segment::Field("S3Output".into()),
                Segment::Field("S3Uri".into())
            ]
        );
        assert_eq!(parse_path("TrainingJobSummaries[0].TrainingJobName").unwrap()[1], Segment::Index(0));
        assert!(parse_path("a..b").is_err());
        assert!(parse_path("a[x").is_err());
        assert_eq!(
            parse_reference("Steps.Eval.PropertyFiles.Report").unwrap(),
            Reference::PropertyFile { step: "Eval".into(), file: "Report".into() }
        );
        assert!(matches!(parse_reference("Steps.T.BestTrainingJob.TrainingJobName"), Ok(Reference::Property { .. })));
        assert!(parse_reference("Step.T.X").is_err());
        assert!(parse_reference("Steps.T").is_err());
    }

    struct Fixed;
    impl Scope for Fixed {
        fn get(&self, reference: &Reference) -> Result<Value, String> {
            match reference {
                Reference::Parameter(name) if name == "Mse" => Ok(json!(46.0)),
                Reference::Execution(_) => Ok(json!("abc")),
                other => Err(format!("no {other:?}")),
            }
        }
        fn property_file(&self, _step: &str, _file: &str) -> Result<Value, String> {
            Ok(json!({"regression_metrics": {"mse": {"value": 7.5}}}))
        }
        fn json_object(&self, uri: &str) -> Result<Value, String> {
            match uri {
                "s3://b/abc/evaluation.json" => Ok(json!({"metrics": [{"name": "mse", "value": 2.5}]})),
                other => Err(format!("no object {other}")),
            }
        }
        fn unmasked(&self) -> &dyn Scope {
            self
        }
    }

    #[test]
    fn json_get_reads_an_object_at_an_s3_uri() {
        let uri = json!({"Std:Join": {"On": "/", "Values": ["s3://b", {"Get": "Execution.PipelineExecutionId"}, "evaluation.json"]}});
        let expr = json!({"Std:JsonGet": {"S3Uri": uri, "Path": "metrics[0].value"}});
        assert_eq!(resolve(&expr, &Fixed, "$").unwrap(), json!(2.5));
        let missing = json!({"Std:JsonGet": {"S3Uri": "s3://b/none.json", "Path": "metrics"}});
        assert!(matches!(resolve(&missing, &Fixed, "$"), Err(ExprError::Unresolved { .. })));
        let nothing = json!({"Std:JsonGet": {"S3Uri": uri, "Path": "metrics[1]"}});
        assert!(resolve(&nothing, &Fixed, "$").unwrap_err().to_string().contains("nothing at `metrics[1]`"));
    }

    #[test]
    fn resolves_join_and_json_get_and_conditions() {
        let expr =
            json!({"Std:Join": {"On": "/", "Values": ["s3://b", {"Get": "Execution.PipelineExecutionId"}, "x"]}});
        assert_eq!(resolve(&expr, &Fixed, "$").unwrap(), json!("s3://b/abc/x"));
        let mse = json!({"Std:JsonGet": {"PropertyFile": {"Get": "Steps.E.PropertyFiles.R"}, "Path": "regression_metrics.mse.value"}});
        let cond = json!([{"Type": "LessThanOrEqualTo", "LeftValue": mse, "RightValue": {"Get": "Parameters.Mse"}}]);
        let resolved = resolve(&cond, &Fixed, "$").unwrap();
        assert!(conditions_hold(resolved.as_array().unwrap()).unwrap());
        let not = json!([{"Type": "Not", "Condition": resolved[0]}]);
        assert!(!conditions_hold(not.as_array().unwrap()).unwrap());
        let missing = json!({"Get": "Parameters.Nope"});
        assert!(matches!(resolve(&missing, &Fixed, "$"), Err(ExprError::Unresolved { .. })));
        assert!(conditions_hold(&[json!({"Type": "In", "QueryValue": "a", "Values": ["b", "a"]})]).unwrap());
    }
}
