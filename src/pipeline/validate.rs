//! `sagestep validate`: AWS's published pipeline-definition schema (patched so that real SDK
//! output validates; see `schema/README.md`) checked with a draft-07 validator, then our own
//! lint for what a schema cannot see: names, references, property paths, cycles, size.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use serde_json::{Value, json};

use super::definition::{Definition, MAX_DEFINITION_CHARS, ParameterType, StepType};
use super::expr::{self, EXECUTION_VARIABLES, Reference, Segment};

const SCHEMA: &str = include_str!("../../schema/pipeline-definition.schema.json");

/// One problem, with the JSON path it is at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Issue {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every schema and lint problem of a parsed definition (empty: valid).
pub fn validate(definition: &Definition) -> Vec<Issue> {
    let mut issues = schema_issues(&definition.document);
    issues.extend(lint(definition));
    issues.sort();
    issues.dedup();
    issues
}

struct Validators {
    document: jsonschema::Validator,
    steps: HashMap<&'static str, jsonschema::Validator>,
}

/// Step types and their schema definitions.
const STEP_DEFINITIONS: [(&str, &str); 16] = [
    ("Condition", "ConditionStep"),
    ("Training", "TrainingStep"),
    ("Processing", "ProcessingStep"),
    ("Transform", "TransformStep"),
    ("Model", "CreateModelStep"),
    ("RegisterModel", "RegisterModelStep"),
    ("Lambda", "LambdaStep"),
    ("Callback", "CallbackStep"),
    ("Tuning", "TuningStep"),
    ("ClarifyCheck", "ClarifyCheckStep"),
    ("QualityCheck", "QualityCheckStep"),
    ("EMR", "EMRStep"),
    ("Fail", "FailStep"),
    ("AutoML", "AutoMLStep"),
    ("Endpoint", "EndpointStep"),
    ("EndpointConfig", "EndpointConfigStep"),
];

fn validators() -> &'static Validators {
    static VALIDATORS: OnceLock<Validators> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA).expect("the bundled schema is JSON");
        let document = jsonschema::draft7::new(&schema).expect("the bundled schema compiles");
        let steps = STEP_DEFINITIONS
            .iter()
            .map(|(kind, definition)| {
                // One step type on its own, so that a bad step gets that type's precise errors
                // instead of "not valid under any of the given schemas".
                let one = json!({
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "definitions": schema["definitions"],
                    "allOf": [{"$ref": format!("#/definitions/{definition}")}],
                });
                (*kind, jsonschema::draft7::new(&one).expect("a step definition compiles"))
            })
            .collect();
        Validators { document, steps }
    })
}

fn schema_issues(document: &Value) -> Vec<Issue> {
    let v = validators();
    let mut issues = Vec::new();
    for error in v.document.iter_errors(document) {
        let pointer = error.instance_path().to_string();
        let at = pointer_to_path(&pointer);
        if is_step_pointer(&pointer)
            && let Some(step) = document.pointer(&pointer)
        {
            explain_step(step, &at, &mut issues);
            continue;
        }
        issues.push(Issue { path: at, message: short(&error.to_string()) });
    }
    issues
}

/// A step that matched none of the step schemas: say why, against its own type's schema.
fn explain_step(step: &Value, at: &str, issues: &mut Vec<Issue>) {
    let kind = step.get("Type").and_then(Value::as_str).unwrap_or_default();
    let Some(validator) = validators().steps.get(kind) else {
        let known: Vec<&str> = STEP_DEFINITIONS.iter().map(|(k, _)| *k).collect();
        issues.push(Issue {
            path: format!("{at}.Type"),
            message: format!("`{kind}` is not a step type; expected one of {}", known.join(", ")),
        });
        return;
    };
    for error in validator.iter_errors(step) {
        let pointer = error.instance_path().to_string();
        let path = format!("{at}{}", &pointer_to_path(&pointer)[1..]);
        if is_step_pointer(&pointer)
            && let Some(inner) = step.pointer(&pointer)
        {
            explain_step(inner, &path, issues);
            continue;
        }
        issues.push(Issue { path, message: short(&error.to_string()) });
    }
}

/// `/Steps/3` or `.../IfSteps/0`: a step object.
fn is_step_pointer(pointer: &str) -> bool {
    let mut parts = pointer.rsplit('/');
    let (Some(index), Some(list)) = (parts.next(), parts.next()) else { return false };
    index.parse::<usize>().is_ok() && matches!(list, "Steps" | "IfSteps" | "ElseSteps")
}

/// `/Steps/1/Arguments` -> `$.Steps[1].Arguments`.
fn pointer_to_path(pointer: &str) -> String {
    let mut path = String::from("$");
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.parse::<usize>().is_ok() {
            path.push_str(&format!("[{part}]"));
        } else {
            path.push('.');
            path.push_str(&part);
        }
    }
    path
}

/// Schema messages quote whole instances; keep them readable.
fn short(message: &str) -> String {
    const LIMIT: usize = 300;
    if message.len() <= LIMIT {
        return message.to_string();
    }
    let mut cut = LIMIT;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &message[..cut])
}

// --- Lint ------------------------------------------------------------------------------------

/// What a schema cannot check.
pub fn lint(definition: &Definition) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut issue = |path: &str, message: String| issues.push(Issue { path: path.to_string(), message });

    if definition.chars > MAX_DEFINITION_CHARS {
        issue(
            "$",
            format!(
                "the definition has {} characters; CreatePipeline takes at most {MAX_DEFINITION_CHARS} inline",
                definition.chars
            ),
        );
    }

    let mut seen_parameters = BTreeSet::new();
    for (i, parameter) in definition.parameters.iter().enumerate() {
        let at = format!("$.Parameters[{i}]");
        if !seen_parameters.insert(parameter.name.as_str()) {
            issue(&at, format!("parameter `{}` is declared twice", parameter.name));
        }
        if let Some(default) = &parameter.default {
            let fits = match parameter.kind {
                ParameterType::String => default.is_string(),
                ParameterType::Integer => default.is_i64() || default.is_u64(),
                ParameterType::Float => default.is_number(),
                ParameterType::Boolean => default.is_boolean(),
            };
            if !fits {
                issue(&format!("{at}.DefaultValue"), format!("{default} is not a {:?}", parameter.kind));
            }
            if let (Some(values), Some(text)) = (&parameter.enum_values, default.as_str())
                && !values.iter().any(|v| v == text)
            {
                issue(&format!("{at}.DefaultValue"), format!("`{text}` is not one of its EnumValues {values:?}"));
            }
        }
    }

    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (index, step) in definition.steps.iter().enumerate() {
        if let Some(first) = by_name.insert(step.name.as_str(), index) {
            let other = &definition.steps[first];
            issue(&format!("{}.Name", step.path), format!("step name `{}` is also used at {}", step.name, other.path));
        }
    }

    // Edges of the dependency graph: step -> steps it needs.
    let mut needs: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for step in &definition.steps {
        // Edges to unknown steps are reported below and are harmless to the cycle search.
        needs.insert(step.name.as_str(), step.dependencies());
        for (i, target) in step.depends_on.iter().enumerate() {
            let at = format!("{}.DependsOn[{i}]", step.path);
            if target == &step.name {
                issue(&at, format!("step `{}` depends on itself", step.name));
            } else if definition.step(target).is_none() {
                issue(&at, format!("DependsOn names `{target}`, which is not a step of this pipeline"));
            }
        }
        for file in &step.property_files {
            let outputs = output_names(step);
            if step.kind != StepType::Processing {
                issue(&format!("{}.PropertyFiles", step.path), "only Processing steps have property files".into());
            } else if !outputs.contains(&file.output_name) {
                issue(
                    &format!("{}.PropertyFiles", step.path),
                    format!(
                        "property file `{}` names output `{}`, but the step's outputs are {:?}",
                        file.name, file.output_name, outputs
                    ),
                );
            }
        }
        for (i, policy) in step.retry.iter().enumerate() {
            if policy.max_attempts.is_some() == policy.expire_after_min.is_some() {
                issue(
                    &format!("{}.RetryPolicies[{i}]", step.path),
                    "give exactly one of MaxAttempts and ExpireAfterMin".into(),
                );
            }
        }
        let mut found = Vec::new();
        expr::visit_gets(&step.arguments, &format!("{}.Arguments", step.path), &mut |get, at| {
            found.push((get.to_string(), at.to_string()));
        });
        for (get, at) in found {
            if let Err(message) = check_get(definition, step, &get) {
                issue(&at, message);
            }
        }
    }

    if let Some(cycle) = find_cycle(&needs) {
        issue("$.Steps", format!("the steps form a cycle: {}", cycle.join(" -> ")));
    }
    issues.extend(capture_issues(definition));
    issues
}

/// A Transform step's `DataCaptureConfig`: the literal values the schema lets through that
/// CreateTransformJob would refuse.
fn capture_issues(definition: &Definition) -> Vec<Issue> {
    let transforms = definition.steps.iter().filter(|s| s.kind == StepType::Transform);
    transforms
        .filter_map(|step| Some((step, step.arguments.get("DataCaptureConfig")?)))
        .flat_map(|(step, config)| {
            super::jobs::capture::value_issues(config).into_iter().map(|(field, message)| Issue {
                path: format!("{}.Arguments.DataCaptureConfig.{field}", step.path),
                message,
            })
        })
        .collect()
}

fn output_names(step: &super::definition::Step) -> Vec<String> {
    step.arguments
        .pointer("/ProcessingOutputConfig/Outputs")
        .and_then(Value::as_array)
        .map(|outputs| outputs.iter().filter_map(|o| o.get("OutputName")?.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Check that one `Get` names something that exists (the dependency graph is `Step::dependencies`).
fn check_get(definition: &Definition, from: &super::definition::Step, get: &str) -> Result<(), String> {
    let reference = expr::parse_reference(get).map_err(|m| format!("`{get}`: {m}"))?;
    match reference {
        Reference::Parameter(name) => match definition.parameter(&name) {
            Some(_) => Ok(()),
            None => Err(format!("`{get}`: no parameter `{name}` is declared")),
        },
        Reference::Execution(var) if EXECUTION_VARIABLES.contains(&var.as_str()) => Ok(()),
        Reference::Execution(var) => Err(format!("`{get}`: `{var}` is not one of {}", EXECUTION_VARIABLES.join(", "))),
        Reference::ExperimentConfig(var) if var == "ExperimentName" || var == "TrialName" => Ok(()),
        Reference::ExperimentConfig(var) => Err(format!("`{get}`: `{var}` is not ExperimentName or TrialName")),
        Reference::PropertyFile { step, file } => {
            let target = target_step(definition, from, &step, get)?;
            if target.property_files.iter().any(|f| f.name == file) {
                Ok(())
            } else {
                Err(format!("`{get}`: step `{step}` declares no property file `{file}`"))
            }
        }
        Reference::Property { step, path } => {
            let target = target_step(definition, from, &step, get)?;
            check_property_path(target, &path).map_err(|m| format!("`{get}`: {m}"))?;
            Ok(())
        }
    }
}

/// Whether a step in `inner` runs only when `outer` is taken: the same branch, or a branch of
/// a condition that itself runs in `outer` (conditions nest).
fn within(
    definition: &Definition,
    inner: Option<&super::definition::Branch>,
    outer: &super::definition::Branch,
) -> bool {
    let mut branch = inner.cloned();
    // Each step sits in one branch, so the walk ends at the top within the step count.
    for _ in 0..=definition.steps.len() {
        match branch {
            Some(b) if &b == outer => return true,
            Some(b) => branch = definition.step(&b.condition).and_then(|c| c.branch.clone()),
            None => return false,
        }
    }
    false
}

fn target_step<'d>(
    definition: &'d Definition,
    from: &super::definition::Step,
    name: &str,
    get: &str,
) -> Result<&'d super::definition::Step, String> {
    let target = definition.step(name).ok_or_else(|| format!("`{get}`: no step is named `{name}`"))?;
    if target.name == from.name {
        return Err(format!("`{get}`: a step cannot read its own properties"));
    }
    if let Some(branch) = &target.branch
        && !within(definition, from.branch.as_ref(), branch)
    {
        return Err(format!(
            "`{get}`: step `{name}` runs only in a branch of condition `{}`; a step outside that branch cannot read it",
            branch.condition
        ));
    }
    Ok(target)
}

/// Top-level properties of each step type (the botocore Describe* response shapes).
fn top_level_properties(kind: &StepType) -> &'static [&'static str] {
    match kind {
        StepType::Processing => &PROCESSING_PROPERTIES,
        StepType::Training => &TRAINING_PROPERTIES,
        StepType::Tuning => &TUNING_PROPERTIES,
        StepType::Model => &MODEL_PROPERTIES,
        StepType::RegisterModel => &REGISTER_MODEL_PROPERTIES,
        StepType::Transform => &TRANSFORM_PROPERTIES,
        StepType::Condition => &["Outcome"],
        StepType::Fail | StepType::Other(_) => &[],
    }
}

/// DescribeProcessingJob's response fields.
const PROCESSING_PROPERTIES: [&str; 21] = [
    "ProcessingInputs",
    "ProcessingOutputConfig",
    "ProcessingJobName",
    "ProcessingResources",
    "StoppingCondition",
    "AppSpecification",
    "Environment",
    "NetworkConfig",
    "RoleArn",
    "ExperimentConfig",
    "ProcessingJobArn",
    "ProcessingJobStatus",
    "ExitMessage",
    "FailureReason",
    "ProcessingEndTime",
    "ProcessingStartTime",
    "LastModifiedTime",
    "CreationTime",
    "MonitoringScheduleArn",
    "AutoMLJobArn",
    "TrainingJobArn",
];

/// DescribeTrainingJob's response fields.
const TRAINING_PROPERTIES: [&str; 37] = [
    "TrainingJobName",
    "TrainingJobArn",
    "TuningJobArn",
    "LabelingJobArn",
    "AutoMLJobArn",
    "ModelArtifacts",
    "TrainingJobStatus",
    "SecondaryStatus",
    "FailureReason",
    "HyperParameters",
    "AlgorithmSpecification",
    "RoleArn",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "VpcConfig",
    "StoppingCondition",
    "CreationTime",
    "TrainingStartTime",
    "TrainingEndTime",
    "LastModifiedTime",
    "SecondaryStatusTransitions",
    "FinalMetricDataList",
    "EnableNetworkIsolation",
    "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining",
    "CheckpointConfig",
    "TrainingTimeInSeconds",
    "BillableTimeInSeconds",
    "DebugHookConfig",
    "ExperimentConfig",
    "DebugRuleConfigurations",
    "TensorBoardOutputConfig",
    "DebugRuleEvaluationStatuses",
    "ProfilerConfig",
    "Environment",
    "RetryStrategy",
];

/// DescribeHyperParameterTuningJob's response fields.
const TUNING_PROPERTIES: [&str; 18] = [
    "HyperParameterTuningJobName",
    "HyperParameterTuningJobArn",
    "HyperParameterTuningJobConfig",
    "TrainingJobDefinition",
    "TrainingJobDefinitions",
    "HyperParameterTuningJobStatus",
    "CreationTime",
    "HyperParameterTuningEndTime",
    "LastModifiedTime",
    "TrainingJobStatusCounters",
    "ObjectiveStatusCounters",
    "BestTrainingJob",
    "OverallBestTrainingJob",
    "WarmStartConfig",
    "FailureReason",
    "TuningJobCompletionDetails",
    "ConsumedResources",
    "TrainingJobSummaries",
];

/// DescribeModel's response fields.
const MODEL_PROPERTIES: [&str; 10] = [
    "ModelName",
    "PrimaryContainer",
    "Containers",
    "InferenceExecutionConfig",
    "ExecutionRoleArn",
    "VpcConfig",
    "CreationTime",
    "ModelArn",
    "EnableNetworkIsolation",
    "DeploymentRecommendation",
];

/// DescribeModelPackage's response fields.
const REGISTER_MODEL_PROPERTIES: [&str; 26] = [
    "ModelPackageName",
    "ModelPackageGroupName",
    "ModelPackageVersion",
    "ModelPackageArn",
    "ModelPackageDescription",
    "CreationTime",
    "InferenceSpecification",
    "SourceAlgorithmSpecification",
    "ValidationSpecification",
    "ModelPackageStatus",
    "ModelPackageStatusDetails",
    "CertifyForMarketplace",
    "ModelApprovalStatus",
    "CreatedBy",
    "MetadataProperties",
    "ModelMetrics",
    "LastModifiedTime",
    "LastModifiedBy",
    "ApprovalDescription",
    "CustomerMetadataProperties",
    "DriftCheckBaselines",
    "Domain",
    "Task",
    "SamplePayloadUrl",
    "AdditionalInferenceSpecifications",
    "SkipModelValidation",
];

/// DescribeTransformJob's response fields.
const TRANSFORM_PROPERTIES: [&str; 21] = [
    "TransformJobName",
    "TransformJobArn",
    "TransformJobStatus",
    "FailureReason",
    "ModelName",
    "MaxConcurrentTransforms",
    "ModelClientConfig",
    "MaxPayloadInMB",
    "BatchStrategy",
    "Environment",
    "TransformInput",
    "TransformOutput",
    "DataCaptureConfig",
    "TransformResources",
    "CreationTime",
    "TransformStartTime",
    "TransformEndTime",
    "LabelingJobArn",
    "AutoMLJobArn",
    "DataProcessing",
    "ExperimentConfig",
];

/// Fields of a tuning job's HyperParameterTrainingJobSummary.
const TRAINING_JOB_SUMMARY: [&str; 12] = [
    "TrainingJobDefinitionName",
    "TrainingJobName",
    "TrainingJobArn",
    "TuningJobName",
    "CreationTime",
    "TrainingStartTime",
    "TrainingEndTime",
    "TrainingJobStatus",
    "TunedHyperParameters",
    "FailureReason",
    "FinalHyperParameterTuningJobObjectiveMetric",
    "ObjectiveStatus",
];

fn check_property_path(target: &super::definition::Step, path: &[Segment]) -> Result<(), String> {
    let kind_name = target.kind.as_str();
    if let StepType::Other(_) = target.kind {
        return Ok(()); // not run here; the schema checked its type
    }
    let Some(Segment::Field(first)) = path.first() else {
        return Err(format!("a {kind_name} step's property path starts with a field name"));
    };
    let known = top_level_properties(&target.kind);
    if !known.contains(&first.as_str()) {
        return Err(format!(
            "a {kind_name} step has no property `{first}`; it has {}",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ));
    }
    match (&target.kind, path) {
        (StepType::Processing, [_, Segment::Field(outputs), rest @ ..])
            if first == "ProcessingOutputConfig" && outputs == "Outputs" =>
        {
            let names = output_names(target);
            match rest.first() {
                Some(Segment::Key(name)) if !names.contains(name) => {
                    Err(format!("step `{}` has no output `{name}`; its outputs are {names:?}", target.name))
                }
                Some(Segment::Index(i)) if *i >= names.len() => {
                    Err(format!("step `{}` has {} outputs; [{i}] is out of range", target.name, names.len()))
                }
                _ => Ok(()),
            }
        }
        (StepType::Tuning, [_, Segment::Field(field), ..]) if first == "BestTrainingJob" => summary_field(field),
        (StepType::Tuning, [_, Segment::Index(_), Segment::Field(field), ..]) if first == "TrainingJobSummaries" => {
            summary_field(field)
        }
        (StepType::Training | StepType::Tuning, [_, Segment::Key(metric), ..]) if first == "FinalMetricDataList" => {
            let defined = metric_names(target);
            if defined.contains(metric) {
                Ok(())
            } else {
                Err(format!("no MetricDefinition of step `{}` is named `{metric}`; defined: {defined:?}", target.name))
            }
        }
        _ => Ok(()),
    }
}

fn summary_field(field: &str) -> Result<(), String> {
    if TRAINING_JOB_SUMMARY.contains(&field) {
        Ok(())
    } else {
        Err(format!("a tuning job summary has no field `{field}`; it has {}", TRAINING_JOB_SUMMARY.join(", ")))
    }
}

fn metric_names(step: &super::definition::Step) -> Vec<String> {
    let specification = step
        .arguments
        .pointer("/AlgorithmSpecification")
        .or_else(|| step.arguments.pointer("/TrainingJobDefinition/AlgorithmSpecification"));
    specification
        .and_then(|s| s.get("MetricDefinitions"))
        .and_then(Value::as_array)
        .map(|defs| defs.iter().filter_map(|d| d.get("Name")?.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn find_cycle(needs: &BTreeMap<&str, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        needs: &'a BTreeMap<&str, BTreeSet<String>>,
        marks: &mut HashMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let start = stack.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node, Mark::Visiting);
        stack.push(node);
        if let Some(deps) = needs.get(node) {
            for dep in deps {
                if let Some(cycle) = visit(dep.as_str(), needs, marks, stack) {
                    return Some(cycle);
                }
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    for node in needs.keys() {
        let mut stack = Vec::new();
        if let Some(cycle) = visit(node, needs, &mut marks, &mut stack) {
            return Some(cycle);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues_of(text: &str) -> Vec<Issue> {
        validate(&Definition::parse("t.json", text).unwrap())
    }

    #[test]
    fn the_shipped_pipeline_is_valid() {
        let text = include_str!("../../pipeline.json");
        assert_eq!(issues_of(text), Vec::<Issue>::new());
    }

    #[test]
    fn cycles_and_bad_references_are_found() {
        let text = r#"{"Version":"2020-12-01","Parameters":[],"Steps":[
          {"Name":"A","Type":"Fail","DependsOn":["B"],"Arguments":{"ErrorMessage":"a"}},
          {"Name":"B","Type":"Fail","DependsOn":["A","Z"],"Arguments":{"ErrorMessage":{"Get":"Parameters.Nope"}}}]}"#;
        let issues = issues_of(text);
        let text_of = |needle: &str| issues.iter().any(|i| i.to_string().contains(needle));
        assert!(text_of("cycle: A -> B -> A"), "{issues:?}");
        assert!(text_of("$.Steps[1].DependsOn[1]: DependsOn names `Z`"), "{issues:?}");
        assert!(text_of("$.Steps[1].Arguments.ErrorMessage.Get: `Parameters.Nope`: no parameter"), "{issues:?}");
    }
}
