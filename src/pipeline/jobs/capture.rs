//! Batch transform data capture: CreateTransformJob's `DataCaptureConfig`
//! (botocore's `BatchDataCaptureConfig`: `DestinationS3Uri`, `KmsKeyId`, `GenerateInferenceId`).
//!
//! SageMaker copies no data for a transform job: it writes two manifests, in the format
//! `S3DataSource`'s `ManifestFile` reads (`[{"prefix": P}, "name", ...]`), one naming the
//! job's input objects under `{dest}/input/` and one naming its `.out` objects under
//! `{dest}/output/`, each at `yyyy/mm/dd/hh/{uuid}.json` of the job's start (UTC). With
//! `GenerateInferenceId`, every record of the output gets a fresh UUID and the job's start
//! time (the model-quality merge's keys): a CSV line gains two trailing columns, a JSON value
//! is wrapped as `{"SageMakerInferenceId", "SageMakerInferenceTime", "SageMakerOutput"}`.

use serde_json::Value;

use super::{JobFailure, text};
use crate::storage::{Location, Storage};

/// botocore's `S3Uri`: at most 1024 characters matching `(https|s3)://([^/]+)/?(.*)`.
const MAX_URI_CHARS: usize = 1024;
/// botocore's `KmsKeyId`: at most 2048 characters of `[a-zA-Z0-9:/_-]`.
const MAX_KMS_KEY_CHARS: usize = 2048;
const FIELDS: [&str; 3] = ["DestinationS3Uri", "KmsKeyId", "GenerateInferenceId"];

/// What a `DataCaptureConfig` asks of a transform job, checked.
#[derive(Debug, Clone)]
pub(super) struct BatchCapture {
    /// `DestinationS3Uri` without trailing slashes.
    destination: String,
    kms_key_id: Option<String>,
    pub generate_inference_id: bool,
}

/// Each problem of a `DataCaptureConfig` as `(field, message)`: its shape (an object of
/// BatchDataCaptureConfig's fields, `DestinationS3Uri` given, each of its type), then
/// `value_issues`. Values that are expressions (resolved only when the step runs) are not
/// judged: the runner checks them resolved.
pub fn config_issues(config: &Value) -> Vec<(String, String)> {
    let mut issues = Vec::new();
    let Some(fields) = config.as_object() else {
        issues.push((String::new(), format!("must be an object with `DestinationS3Uri`. Given: {config}")));
        return issues;
    };
    for name in fields.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        issues.push((
            name.clone(),
            format!(
                "is not a field of a transform job's DataCaptureConfig (BatchDataCaptureConfig: {}); \
                 sampling and capture options belong to an endpoint's DataCaptureConfig",
                FIELDS.join(", ")
            ),
        ));
    }
    if !fields.contains_key("DestinationS3Uri") {
        issues.push(("DestinationS3Uri".into(), "is required".into()));
    }
    for (field, expected) in
        [("DestinationS3Uri", "a string"), ("KmsKeyId", "a string"), ("GenerateInferenceId", "a boolean")]
    {
        let fits = match fields.get(field) {
            None => true,
            // An object is an expression such as `{"Get": ...}`.
            Some(value) if value.is_object() => true,
            Some(value) if expected == "a boolean" => value.is_boolean(),
            Some(value) => value.is_string(),
        };
        if !fits {
            issues.push((field.into(), format!("must be {expected}. Given: {}", fields[field])));
        }
    }
    issues.extend(value_issues(config));
    issues
}

/// What a schema does not say well of a `DataCaptureConfig`'s literal strings: botocore's
/// length and pattern of `DestinationS3Uri` and `KmsKeyId`.
pub fn value_issues(config: &Value) -> Vec<(String, String)> {
    let mut issues = Vec::new();
    if let Some(uri) = text(config, "/DestinationS3Uri")
        && let Err(message) = check_uri(uri)
    {
        issues.push(("DestinationS3Uri".into(), message));
    }
    if let Some(key) = text(config, "/KmsKeyId")
        && (key.chars().count() > MAX_KMS_KEY_CHARS
            || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b)))
    {
        issues.push((
            "KmsKeyId".into(),
            format!(
                "must be a KMS key id, key ARN, alias or alias ARN: at most {MAX_KMS_KEY_CHARS} characters of \
                 letters, digits, `:`, `/`, `_` and `-`. Given: `{key}`"
            ),
        ));
    }
    issues
}

fn check_uri(uri: &str) -> Result<(), String> {
    let rest = uri.strip_prefix("s3://").or_else(|| uri.strip_prefix("https://"));
    let bucket = rest.map(|r| r.split('/').next().unwrap_or_default());
    if uri.chars().count() > MAX_URI_CHARS || bucket.is_none_or(str::is_empty) {
        return Err(format!(
            "must be an S3 URI, `s3://bucket/prefix` (at most {MAX_URI_CHARS} characters matching \
             `(https|s3)://([^/]+)/?(.*)`). Given: `{uri}`"
        ));
    }
    Ok(())
}

impl BatchCapture {
    /// The job's `DataCaptureConfig` (resolved), or `None` when it has none.
    pub fn from_args(args: &Value) -> Result<Option<Self>, JobFailure> {
        let Some(config) = args.get("DataCaptureConfig") else { return Ok(None) };
        if let Some((field, message)) = config_issues(config).into_iter().next() {
            let at = if field.is_empty() { String::new() } else { format!(".{field}") };
            return Err(JobFailure::client(format!("`DataCaptureConfig{at}` {message}")));
        }
        let destination = text(config, "/DestinationS3Uri").unwrap_or_default();
        if destination.starts_with("https://") {
            return Err(JobFailure::client(format!(
                "`DataCaptureConfig.DestinationS3Uri` `{destination}`: the local runner stores to s3:// URIs; \
                 write it as s3://bucket/prefix"
            )));
        }
        Ok(Some(Self {
            destination: destination.trim_end_matches('/').to_string(),
            kms_key_id: text(config, "/KmsKeyId").filter(|k| !k.is_empty()).map(str::to_string),
            generate_inference_id: config.get("GenerateInferenceId").and_then(Value::as_bool).unwrap_or(false),
        }))
    }

    /// Write the input and the output manifests of a job that started at `start`: `inputs`
    /// are the objects found under `input_uri`, `outputs` what was stored under `output_uri`.
    /// Returns where they went; on a failure, nothing is left.
    pub fn write_manifests(
        &self,
        storage: &Storage,
        start: &JobStart,
        (input_uri, inputs): (&str, &[Location]),
        (output_uri, outputs): (&str, &[Location]),
    ) -> Result<Vec<Location>, JobFailure> {
        let mut written = Vec::new();
        for (folder, uri, objects) in [("input", input_uri, inputs), ("output", output_uri, outputs)] {
            let key = format!("{}/{folder}/{}/{}.json", self.destination, start.hour_folder(), uuid::Uuid::new_v4());
            // The key is parsed before anything is written, so a failure never leaves a manifest.
            let result = Location::parse(&key).map_err(|e| JobFailure::client(e.to_string())).and_then(|location| {
                let bytes = manifest(uri, objects)?;
                storage
                    .write_encrypted(&key, &bytes, self.kms_key_id.as_deref())
                    .map_err(|e| super::prefix(format!("writing the {folder} capture manifest"), e.into()))?;
                Ok(location)
            });
            match result {
                Ok(location) => written.push(location),
                Err(failure) => {
                    storage.remove(&written);
                    return Err(failure);
                }
            }
        }
        Ok(written)
    }
}

/// A manifest of `objects`, all under `uri`: `[{"prefix": P}, name...]` where each name
/// appended to `P` is the object's URI, `P` ending in `/`. `P` is `uri` itself when it names a
/// folder (ends in `/`, or every object lies below `uri/`), else the folder `uri` is in (a
/// single object, or a key prefix such as `s3://b/data/test` matching `test_1/x.csv`).
fn manifest(uri: &str, objects: &[Location]) -> Result<Vec<u8>, JobFailure> {
    let base = Location::parse(uri).map_err(|e| JobFailure::client(e.to_string()))?.to_string();
    let names: Vec<String> = objects.iter().map(ToString::to_string).collect();
    let prefix = if base.ends_with('/') {
        base
    } else if names.iter().all(|n| n.len() > base.len() + 1 && n.starts_with(&format!("{base}/"))) {
        format!("{base}/")
    } else {
        base[..base.rfind('/').map_or(0, |at| at + 1)].to_string()
    };
    let mut entries = vec![serde_json::json!({ "prefix": prefix })];
    for name in &names {
        let relative = name.strip_prefix(&prefix).ok_or_else(|| {
            JobFailure::service(format!("the capture manifest's object {name} does not lie under {prefix}"))
        })?;
        entries.push(Value::String(relative.to_string()));
    }
    Ok(serde_json::to_vec(&entries).expect("JSON"))
}

/// When a transform job started: the time its records are stamped with and the hour folder of
/// its manifests.
#[derive(Debug, Clone)]
pub struct JobStart {
    /// `2026-12-07T08:24:32Z`: second precision, as SageMaker writes `SageMakerInferenceTime`.
    seconds: String,
    /// The same instant with milliseconds, for DescribeTransformJob's `TransformStartTime`.
    pub rfc3339: String,
}

impl JobStart {
    pub fn at(secs: f64) -> Self {
        let whole = crate::clock::rfc3339(secs.floor());
        Self { seconds: format!("{}Z", &whole[..19]), rfc3339: crate::clock::rfc3339(secs) }
    }

    pub fn now() -> Self {
        Self::at(crate::clock::now_secs())
    }

    /// `yyyy/mm/dd/hh`.
    fn hour_folder(&self) -> String {
        let s = &self.seconds;
        format!("{}/{}/{}/{}", &s[..4], &s[5..7], &s[8..10], &s[11..13])
    }
}

/// How records are told apart in a transform output, by its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OutputRecords {
    /// `text/csv`: one record a line.
    Csv,
    /// `application/json` or JSON lines: one record a top-level JSON value (a JSON document,
    /// or each line of JSON lines).
    Json,
}

impl OutputRecords {
    /// The records of a response of this content type (media type parameters ignored).
    pub fn of(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match media.as_str() {
            "text/csv" | "csv" => Some(Self::Csv),
            "application/json"
            | "application/jsonlines"
            | "application/x-jsonlines"
            | "application/json-lines"
            | "application/jsonl" => Some(Self::Json),
            _ => None,
        }
    }
}

/// A response of `content_type` with its records stamped (an empty one stays empty).
pub(super) fn stamp_response(
    response: Vec<u8>,
    content_type: Option<&str>,
    start: &JobStart,
) -> Result<Vec<u8>, String> {
    if response.is_empty() {
        return Ok(response);
    }
    let records = content_type.and_then(OutputRecords::of).ok_or_else(|| {
        format!(
            "DataCaptureConfig.GenerateInferenceId: the model answered `{}`; inference ids are added to CSV, \
             JSON and JSON lines output only",
            content_type.unwrap_or("with no Content-Type")
        )
    })?;
    stamp_records(&response, records, start)
}

/// What a JSON record is wrapped in, around its id, its time and the model's value.
const JSON_ID_OPEN: &[u8] = b"{\"SageMakerInferenceId\":\"";
const JSON_TIME_OPEN: &[u8] = b"\",\"SageMakerInferenceTime\":\"";
const JSON_OUTPUT_OPEN: &[u8] = b"\",\"SageMakerOutput\":";

/// A UUID and the job's start time on every record of one response body; blank lines and the
/// whitespace between JSON values are kept as they are. Each record grows by the id, the time
/// and two commas (CSV) or the wrapper (JSON).
fn stamp_records(body: &[u8], records: OutputRecords, start: &JobStart) -> Result<Vec<u8>, String> {
    let lines = memchr::memchr_iter(b'\n', body).count() + 1;
    let stamp = uuid::fmt::Hyphenated::LENGTH + start.seconds.len();
    let per_record = match records {
        OutputRecords::Csv => stamp + 2,
        OutputRecords::Json => stamp + JSON_ID_OPEN.len() + JSON_TIME_OPEN.len() + JSON_OUTPUT_OPEN.len() + 1,
    };
    let mut out = Vec::with_capacity(body.len() + lines * per_record);
    let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
    match records {
        OutputRecords::Csv => {
            for line in body.split_inclusive(|&b| b == b'\n') {
                let content = line.strip_suffix(b"\n").unwrap_or(line);
                let content = content.strip_suffix(b"\r").unwrap_or(content);
                if content.iter().all(u8::is_ascii_whitespace) {
                    out.extend_from_slice(line);
                    continue;
                }
                out.extend_from_slice(content);
                out.push(b',');
                out.extend_from_slice(fresh_id(&mut id).as_bytes());
                out.push(b',');
                out.extend_from_slice(start.seconds.as_bytes());
                out.extend_from_slice(&line[content.len()..]);
            }
        }
        OutputRecords::Json => {
            let mut values = serde_json::Deserializer::from_slice(body).into_iter::<serde::de::IgnoredAny>();
            let mut end = 0;
            while let Some(value) = values.next() {
                value.map_err(|e| format!("the response is not JSON or JSON lines: {e}"))?;
                let piece = &body[end..values.byte_offset()];
                end = values.byte_offset();
                let at = piece.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(piece.len());
                out.extend_from_slice(&piece[..at]);
                out.extend_from_slice(JSON_ID_OPEN);
                out.extend_from_slice(fresh_id(&mut id).as_bytes());
                out.extend_from_slice(JSON_TIME_OPEN);
                out.extend_from_slice(start.seconds.as_bytes());
                out.extend_from_slice(JSON_OUTPUT_OPEN);
                out.extend_from_slice(&piece[at..]);
                out.push(b'}');
            }
            out.extend_from_slice(&body[end..]);
        }
    }
    Ok(out)
}

/// A new random (version 4) UUID, lowercase and hyphenated, written into `buffer`.
fn fresh_id(buffer: &mut [u8; uuid::fmt::Hyphenated::LENGTH]) -> &str {
    uuid::Uuid::new_v4().hyphenated().encode_lower(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn start() -> JobStart {
        // 2026-12-07T08:24:32.750Z
        JobStart::at(1_796_631_872.75)
    }

    fn ids(text: &str) -> Vec<String> {
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| l.split(',').rev().nth(1).unwrap().to_string()).collect()
    }

    #[test]
    fn the_start_is_stamped_to_the_second_and_names_the_hour_folder() {
        let start = start();
        assert_eq!(start.seconds, "2026-12-07T08:24:32Z");
        assert_eq!(start.rfc3339, "2026-12-07T08:24:32.750Z");
        assert_eq!(start.hour_folder(), "2026/12/07/08");
    }

    #[test]
    fn csv_lines_get_an_id_and_the_time_each() {
        let body = b"0.5\n1.25,3\r\n\n7";
        let out = String::from_utf8(stamp_records(body, OutputRecords::Csv, &start()).unwrap()).unwrap();
        let lines: Vec<&str> = out.split('\n').collect();
        assert_eq!(lines.len(), 4, "{out}");
        let ids = ids(&out);
        assert_eq!(ids.len(), 3);
        for (line, (head, id)) in lines.iter().filter(|l| !l.is_empty()).zip(["0.5", "1.25,3", "7"].iter().zip(&ids)) {
            let tail = if line.ends_with('\r') { "\r" } else { "" };
            assert_eq!(*line, format!("{head},{id},2026-12-07T08:24:32Z{tail}"));
            assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
        }
        assert_eq!(lines[2], "", "a blank line stays blank");
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 3);
    }

    #[test]
    fn json_values_are_wrapped_one_each() {
        let body = b"{\"score\":0.5}\n{\"score\":1e400}\n[1, 2]\n";
        let out = stamp_records(body, OutputRecords::Json, &start()).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.ends_with("]}\n"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        // The model's bytes are kept: 1e400 is not re-encoded.
        assert!(lines[1].ends_with(",\"SageMakerOutput\":{\"score\":1e400}}"), "{}", lines[1]);
        let first: Value = serde_json::from_str(lines[0]).unwrap();
        let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["SageMakerInferenceId", "SageMakerInferenceTime", "SageMakerOutput"]);
        assert_eq!(first["SageMakerOutput"], json!({"score": 0.5}));
        assert_eq!(first["SageMakerInferenceTime"], "2026-12-07T08:24:32Z");
        let third: Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(third["SageMakerOutput"], json!([1, 2]));
        assert_ne!(first["SageMakerInferenceId"], third["SageMakerInferenceId"]);

        let document = stamp_records(b"{\"predictions\":[{\"score\":1},{\"score\":2}]}", OutputRecords::Json, &start());
        let document: Value = serde_json::from_slice(&document.unwrap()).unwrap();
        assert_eq!(document["SageMakerOutput"]["predictions"][1]["score"], 2);
        let err = stamp_records(b"{\"score\":1}\nnot json", OutputRecords::Json, &start()).unwrap_err();
        assert!(err.contains("not JSON or JSON lines"), "{err}");
        assert_eq!(stamp_records(b"", OutputRecords::Json, &start()).unwrap(), b"");
    }

    #[test]
    fn content_types_decide_the_records() {
        assert_eq!(OutputRecords::of("text/csv; charset=utf-8"), Some(OutputRecords::Csv));
        assert_eq!(OutputRecords::of("Application/JSONLines"), Some(OutputRecords::Json));
        assert_eq!(OutputRecords::of("application/json"), Some(OutputRecords::Json));
        assert_eq!(OutputRecords::of("application/x-recordio-protobuf"), None);
    }

    #[test]
    fn manifests_name_objects_below_one_prefix() {
        let objects = |keys: &[&str]| keys.iter().map(|k| Location::parse(k).unwrap()).collect::<Vec<_>>();
        let parse = |bytes: Vec<u8>| serde_json::from_slice::<Value>(&bytes).unwrap();
        let folder = objects(&["s3://b/in/a.csv", "s3://b/in/sub/c.csv"]);
        let expected = json!([{"prefix": "s3://b/in/"}, "a.csv", "sub/c.csv"]);
        assert_eq!(parse(manifest("s3://b/in", &folder).unwrap()), expected);
        assert_eq!(parse(manifest("s3://b/in/", &folder).unwrap()), expected);
        let one = objects(&["s3://b/in/test-dataset.jsonl"]);
        let expected = json!([{"prefix": "s3://b/in/"}, "test-dataset.jsonl"]);
        assert_eq!(parse(manifest("s3://b/in/test-dataset.jsonl", &one).unwrap()), expected);
        // A key prefix that is not a folder: the names start in the folder it is in.
        let sets = objects(&["s3://b/data/test_1/x.csv", "s3://b/data/test_2/y.csv"]);
        let expected = json!([{"prefix": "s3://b/data/"}, "test_1/x.csv", "test_2/y.csv"]);
        assert_eq!(parse(manifest("s3://b/data/test", &sets).unwrap()), expected);
        assert_eq!(manifest("s3://b/in/", &[]).unwrap(), br#"[{"prefix":"s3://b/in/"}]"#);
    }

    #[test]
    fn bad_configs_name_their_field() {
        let issues = |config: Value| config_issues(&config);
        assert!(issues(json!({"DestinationS3Uri": "s3://b/capture", "GenerateInferenceId": true})).is_empty());
        assert!(issues(json!({"DestinationS3Uri": {"Get": "Parameters.Dest"}, "KmsKeyId": "alias/x"})).is_empty());
        let found = issues(json!({"KmsKeyId": "key with spaces", "GenerateInferenceId": "yes", "Sampling": 5}));
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["Sampling", "DestinationS3Uri", "GenerateInferenceId", "KmsKeyId"], "{found:?}");
        assert!(found[1].1.contains("is required"));
        assert!(found[2].1.contains("must be a boolean. Given: \"yes\""));
        assert!(found[3].1.contains("Given: `key with spaces`"));
        for uri in ["bucket/capture", "s3://", "s3:///capture", "ftp://b/x"] {
            let found = issues(json!({ "DestinationS3Uri": uri }));
            assert_eq!(found.len(), 1, "{uri}");
            assert!(found[0].1.contains("must be an S3 URI") && found[0].1.contains(uri), "{found:?}");
        }
        let long = format!("s3://b/{}", "k".repeat(1020));
        assert_eq!(issues(json!({ "DestinationS3Uri": long })).len(), 1);
        let err = BatchCapture::from_args(
            &json!({"DataCaptureConfig": {"DestinationS3Uri": "https://b.s3.amazonaws.com/x"}}),
        )
        .unwrap_err();
        assert!(err.message.contains("write it as s3://bucket/prefix"), "{}", err.message);
        let err = BatchCapture::from_args(&json!({"DataCaptureConfig": {"GenerateInferenceId": true}})).unwrap_err();
        assert_eq!(err.message, "`DataCaptureConfig.DestinationS3Uri` is required");
    }
}
