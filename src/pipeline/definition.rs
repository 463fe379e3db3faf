//! A SageMaker Pipelines definition (`Version` 2020-12-01), read into typed steps.
//!
//! Arguments stay JSON: they are the `Create*` request bodies, with expressions to resolve at
//! run time. Steps inside Condition branches are flattened into one list, each remembering
//! its JSON path and the branch it belongs to.

use std::collections::BTreeSet;

use serde_json::Value;

use super::expr::{self, Reference};

/// CreatePipeline's limit on an inline definition, in characters.
pub const MAX_DEFINITION_CHARS: usize = 1_048_576;

#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("{file}: cannot read: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}: not JSON: {source}")]
    Syntax { file: String, source: serde_json::Error },
    #[error("{file}: {path}: {message}")]
    Shape { file: String, path: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterType {
    String,
    Integer,
    Float,
    Boolean,
}

#[derive(Debug, Clone)]
pub struct Parameter {
    pub name: String,
    pub kind: ParameterType,
    pub default: Option<Value>,
    pub enum_values: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepType {
    Processing,
    Training,
    Tuning,
    Model,
    RegisterModel,
    Transform,
    Condition,
    Fail,
    /// A type the schema knows but this runner does not run (Lambda, EMR, ...).
    Other(String),
}

impl StepType {
    fn parse(text: &str) -> Self {
        match text {
            "Processing" => Self::Processing,
            "Training" => Self::Training,
            "Tuning" => Self::Tuning,
            "Model" => Self::Model,
            "RegisterModel" => Self::RegisterModel,
            "Transform" => Self::Transform,
            "Condition" => Self::Condition,
            "Fail" => Self::Fail,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Processing => "Processing",
            Self::Training => "Training",
            Self::Tuning => "Tuning",
            Self::Model => "Model",
            Self::RegisterModel => "RegisterModel",
            Self::Transform => "Transform",
            Self::Condition => "Condition",
            Self::Fail => "Fail",
            Self::Other(name) => name,
        }
    }
}

/// `CacheConfig`: reuse an earlier run of the step within `ExpireAfter`.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    pub enabled: bool,
    pub expire_after: Option<std::time::Duration>,
}

/// One entry of `RetryPolicies`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub exception_types: Vec<String>,
    pub interval_seconds: f64,
    pub backoff_rate: f64,
    pub max_attempts: Option<u32>,
    pub expire_after_min: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyFile {
    pub name: String,
    pub output_name: String,
    pub file_path: String,
}

/// Which Condition branch a step sits in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    pub condition: String,
    pub if_branch: bool,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub kind: StepType,
    pub arguments: Value,
    pub depends_on: Vec<String>,
    pub cache: Option<CacheConfig>,
    pub retry: Vec<RetryPolicy>,
    pub property_files: Vec<PropertyFile>,
    /// JSON path of the step object, e.g. `$.Steps[3].Arguments.IfSteps[0]`.
    pub path: String,
    pub branch: Option<Branch>,
}

impl Step {
    /// The steps this one needs before it can run: those it reads (`Get`, `JsonGet`), those
    /// it names in DependsOn, and the Condition whose branch holds it.
    pub fn dependencies(&self) -> BTreeSet<String> {
        let mut needs: BTreeSet<String> = self.depends_on.iter().cloned().collect();
        if let Some(branch) = &self.branch {
            needs.insert(branch.condition.clone());
        }
        expr::visit_gets(&self.arguments, "", &mut |get, _| {
            if let Ok(Reference::Property { step: target, .. } | Reference::PropertyFile { step: target, .. }) =
                expr::parse_reference(get)
            {
                needs.insert(target);
            }
        });
        needs.remove(&self.name);
        needs
    }
}

#[derive(Debug, Clone)]
pub struct Definition {
    pub document: Value,
    pub parameters: Vec<Parameter>,
    pub steps: Vec<Step>,
    pub chars: usize,
}

impl Definition {
    /// Read and parse a definition file.
    pub fn load(path: &std::path::Path) -> Result<Self, DefinitionError> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&file, &text),
            Err(source) => Err(DefinitionError::Read { file, source }),
        }
    }

    /// Parse a definition. Only the envelope is checked here; `validate` checks the rest.
    pub fn parse(file: &str, text: &str) -> Result<Self, DefinitionError> {
        let document: Value =
            serde_json::from_str(text).map_err(|source| DefinitionError::Syntax { file: file.to_string(), source })?;
        let shape = |path: &str, message: &str| DefinitionError::Shape {
            file: file.to_string(),
            path: path.to_string(),
            message: message.to_string(),
        };
        let mut parameters = Vec::new();
        if let Some(list) = document.get("Parameters") {
            let list = list.as_array().ok_or_else(|| shape("$.Parameters", "expected a list"))?;
            for (i, p) in list.iter().enumerate() {
                let path = format!("$.Parameters[{i}]");
                let name = p.get("Name").and_then(Value::as_str).ok_or_else(|| shape(&path, "expected a Name"))?;
                let kind = match p.get("Type").and_then(Value::as_str) {
                    Some("String") => ParameterType::String,
                    Some("Integer") => ParameterType::Integer,
                    Some("Float") => ParameterType::Float,
                    Some("Boolean") => ParameterType::Boolean,
                    _ => return Err(shape(&path, "Type must be String, Integer, Float or Boolean")),
                };
                let enum_values = p
                    .get("EnumValues")
                    .and_then(Value::as_array)
                    .map(|values| values.iter().filter_map(|v| v.as_str().map(str::to_string)).collect());
                parameters.push(Parameter {
                    name: name.to_string(),
                    kind,
                    default: p.get("DefaultValue").cloned(),
                    enum_values,
                });
            }
        }
        let mut steps = Vec::new();
        let list = document
            .get("Steps")
            .and_then(Value::as_array)
            .ok_or_else(|| shape("$.Steps", "expected a list of steps"))?;
        collect_steps(list, "$.Steps", None, &mut steps).map_err(|(path, message)| shape(&path, &message))?;
        Ok(Self { document, parameters, steps, chars: text.chars().count() })
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }
}

fn collect_steps(
    list: &[Value],
    at: &str,
    branch: Option<Branch>,
    out: &mut Vec<Step>,
) -> Result<(), (String, String)> {
    for (i, raw) in list.iter().enumerate() {
        let path = format!("{at}[{i}]");
        let err = |message: &str| (path.clone(), message.to_string());
        let name = raw.get("Name").and_then(Value::as_str).ok_or_else(|| err("a step needs a Name"))?;
        let kind = StepType::parse(raw.get("Type").and_then(Value::as_str).ok_or_else(|| err("a step needs a Type"))?);
        let arguments = raw.get("Arguments").cloned().unwrap_or(Value::Null);
        let depends_on = raw
            .get("DependsOn")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(|n| n.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let cache = raw.get("CacheConfig").map(|c| CacheConfig {
            enabled: c.get("Enabled").and_then(Value::as_bool).unwrap_or(false),
            expire_after: c.get("ExpireAfter").and_then(Value::as_str).and_then(parse_iso8601_duration),
        });
        let retry = raw
            .get("RetryPolicies")
            .and_then(Value::as_array)
            .map(|policies| policies.iter().map(retry_policy).collect())
            .unwrap_or_default();
        let property_files = raw
            .get("PropertyFiles")
            .and_then(Value::as_array)
            .map(|files| {
                files
                    .iter()
                    .map(|f| PropertyFile {
                        name: f.get("PropertyFileName").and_then(Value::as_str).unwrap_or_default().to_string(),
                        output_name: f.get("OutputName").and_then(Value::as_str).unwrap_or_default().to_string(),
                        file_path: f.get("FilePath").and_then(Value::as_str).unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if kind == StepType::Condition {
            for (key, if_branch) in [("IfSteps", true), ("ElseSteps", false)] {
                if let Some(inner) = arguments.get(key).and_then(Value::as_array) {
                    let inner_branch = Branch { condition: name.to_string(), if_branch };
                    collect_steps(inner, &format!("{path}.Arguments.{key}"), Some(inner_branch), out)?;
                }
            }
        }
        out.push(Step {
            name: name.to_string(),
            kind,
            arguments,
            depends_on,
            cache,
            retry,
            property_files,
            path,
            branch: branch.clone(),
        });
    }
    Ok(())
}

fn retry_policy(raw: &Value) -> RetryPolicy {
    let types = match raw.get("ExceptionType") {
        Some(Value::Array(list)) => list.iter().filter_map(|t| t.as_str().map(str::to_string)).collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    RetryPolicy {
        exception_types: types,
        interval_seconds: raw.get("IntervalSeconds").and_then(Value::as_f64).unwrap_or(1.0),
        backoff_rate: raw.get("BackoffRate").and_then(Value::as_f64).unwrap_or(2.0),
        max_attempts: raw.get("MaxAttempts").and_then(Value::as_u64).map(|n| n as u32),
        expire_after_min: raw.get("ExpireAfterMin").and_then(Value::as_u64).map(|n| n as u32),
    }
}

/// An ISO-8601 duration such as `P30D`, `PT1H30M`, `P1Y2M`, `P2W` (a month counts 30 days,
/// a year 365, as SageMaker's cache expiry documents no calendar arithmetic).
pub fn parse_iso8601_duration(text: &str) -> Option<std::time::Duration> {
    let rest = text.strip_prefix('P')?;
    if rest.is_empty() {
        return None;
    }
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut seconds = 0f64;
    let mut add = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
            } else {
                let scale = units.iter().find(|(u, _)| *u == c)?.1;
                seconds += number.parse::<f64>().ok()? * scale;
                number.clear();
            }
        }
        number.is_empty().then_some(())
    };
    const DAY: f64 = 86_400.0;
    add(date, &[('Y', 365.0 * DAY), ('M', 30.0 * DAY), ('W', 7.0 * DAY), ('D', DAY)])?;
    if let Some(time) = time {
        add(time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    Some(std::time::Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_iso8601_duration("P30D").unwrap().as_secs(), 30 * 86_400);
        assert_eq!(parse_iso8601_duration("PT1H30M").unwrap().as_secs(), 5_400);
        assert_eq!(parse_iso8601_duration("P1DT2S").unwrap().as_secs(), 86_402);
        assert!(parse_iso8601_duration("30D").is_none());
        assert!(parse_iso8601_duration("P").is_none());
        assert!(parse_iso8601_duration("P3X").is_none());
        assert!(parse_iso8601_duration("PT").is_none());
    }

    #[test]
    fn branches_are_flattened_with_paths() {
        let text = r#"{"Version":"2020-12-01","Steps":[
            {"Name":"C","Type":"Condition","Arguments":{"Conditions":[],"IfSteps":[{"Name":"A","Type":"Fail","Arguments":{}}],
             "ElseSteps":[{"Name":"B","Type":"Fail","Arguments":{}}]}}]}"#;
        let d = Definition::parse("p.json", text).unwrap();
        let a = d.step("A").unwrap();
        assert_eq!(a.path, "$.Steps[0].Arguments.IfSteps[0]");
        assert_eq!(a.branch, Some(Branch { condition: "C".into(), if_branch: true }));
        assert!(!d.step("B").unwrap().branch.as_ref().unwrap().if_branch);
    }
}
