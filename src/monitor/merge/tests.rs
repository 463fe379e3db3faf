use super::*;

fn capture(event: &str, inference: Option<&str>, output: &str) -> String {
    let mut metadata = serde_json::json!({"eventId": event, "inferenceTime": "2021-05-06T22:21:48Z"});
    if let Some(id) = inference {
        metadata["inferenceId"] = id.into();
    }
    let output =
        serde_json::json!({"observedContentType": "text/csv", "mode": "OUTPUT", "data": output, "encoding": "CSV"});
    serde_json::json!({"captureData": {"endpointOutput": output}, "eventMetadata": metadata, "eventVersion": "0"})
        .to_string()
}

fn truth(event: &str, label: &str) -> String {
    let data = serde_json::json!({"data": label, "encoding": "CSV"});
    serde_json::json!({"groundTruthData": data, "eventMetadata": {"eventId": event}, "eventVersion": "0"}).to_string()
}

fn write(path: &Path, lines: &[String]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn merged_lines(summary: &MergeSummary) -> Vec<String> {
    summary
        .output_files
        .iter()
        .flat_map(|f| std::fs::read_to_string(f).unwrap().lines().map(String::from).collect::<Vec<_>>())
        .collect()
}

#[test]
fn joins_by_inference_id_else_event_id_partitioned_by_capture_hour() {
    let dir = tempfile::tempdir().unwrap();
    let (captures, labels, out) = (dir.path().join("in"), dir.path().join("gt"), dir.path().join("out"));
    let first = capture("e1", Some("7"), "0.9");
    write(
        &captures.join("ep/AllTraffic/2021/05/06/22/21-48-871-a.jsonl"),
        &[first.clone(), capture("e2", None, "0.1")],
    );
    write(&captures.join("ep/AllTraffic/2021/05/06/23/00-01-000-b.jsonl"), &[capture("e3", Some("9"), "0.5")]);
    // The label for e1 is keyed by its inference id; e2's by its event id; e3's never comes.
    write(
        &labels.join("2021/05/06/23/label.jsonl"),
        &[truth("7", "1"), truth("e2", "0"), truth("e1", "wrong"), truth("x", "1")],
    );
    let summary = merge(&captures, &labels, &out).unwrap();
    assert_eq!(
        (summary.captures, summary.merged, summary.unmatched_captures, summary.unmatched_ground_truth),
        (3, 2, 1, 2)
    );
    assert_eq!(summary.output_files.len(), 1);
    let file = &summary.output_files[0];
    let relative = file.strip_prefix(&out).unwrap().to_string_lossy().into_owned();
    assert!(
        relative.starts_with("ep/AllTraffic/2021/05/06/22/part-00000-") && relative.ends_with(".c000.jsonl"),
        "{relative}"
    );
    let lines = merged_lines(&summary);
    // The capture byte for byte, then its ground truth.
    assert_eq!(
        lines[0],
        format!("{},\"groundTruthData\":{{\"data\":\"1\",\"encoding\":\"CSV\"}}}}", &first[..first.len() - 1])
    );
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["groundTruthData"]["data"], "0");
    assert_eq!(second["eventMetadata"]["eventId"], "e2");
    let left: Vec<_> = crate::data::files::list_files(&out).unwrap();
    assert_eq!(left.len(), 1, "no partial file is left: {left:?}");
}

#[test]
fn broken_lines_are_named_and_counted_and_the_rest_merged_and_the_last_label_wins() {
    let dir = tempfile::tempdir().unwrap();
    let (captures, labels, out) = (dir.path().join("in"), dir.path().join("gt"), dir.path().join("out"));
    write(
        &captures.join("ep/v/2021/05/06/22/c.jsonl"),
        &[capture("a", None, "1"), "{not json".into(), capture("b", None, "0")],
    );
    write(&labels.join("2021/05/06/22/1.jsonl"), &[truth("a", "0"), "{\"eventMetadata\":{}}".into(), truth("b", "1")]);
    write(&labels.join("2021/05/06/23/2.jsonl"), &[truth("a", "1")]);
    let summary = merge(&captures, &labels, &out).unwrap();
    assert_eq!((summary.merged, summary.broken_lines, summary.duplicate_ground_truth), (2, 2, 1));
    assert!(
        summary.problems[0]
            .ends_with("1.jsonl, line 2: not a ground-truth record: missing field `eventId` at line 1 column 19"),
        "{:?}",
        summary.problems
    );
    assert!(summary.problems[1].contains("c.jsonl, line 2: not a capture record"), "{:?}", summary.problems);
    let labels: Vec<String> = merged_lines(&summary)
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["groundTruthData"]["data"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(labels, ["1", "1"], "the later hour's label for `a` wins");
}

#[test]
fn a_window_without_captures_ground_truth_or_matches_fails_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (captures, labels, out) = (dir.path().join("in"), dir.path().join("gt"), dir.path().join("out"));
    write(&captures.join("ep/v/2021/05/06/22/c.jsonl"), &[capture("a", None, "1")]);
    let err = merge(&captures, &labels, &out).unwrap_err().to_string();
    assert!(err.contains("gt") && err.contains("does not exist"), "{err}");
    write(&labels.join("2021/05/06/22/1.jsonl"), &["".into()]);
    let err = merge(&captures, &labels, &out).unwrap_err().to_string();
    assert!(err.contains("no ground-truth record"), "{err}");
    write(&labels.join("2021/05/06/22/1.jsonl"), &[truth("z", "1")]);
    let err = merge(&captures, &labels, &out).unwrap_err().to_string();
    assert!(err.contains("none of the 1 captured records has ground truth"), "{err}");
    assert!(crate::data::files::list_files(&out).map(|f| f.is_empty()).unwrap_or(true), "nothing written");
    std::fs::remove_dir_all(&captures).unwrap();
    std::fs::create_dir_all(captures.join("ep")).unwrap();
    std::fs::write(captures.join("ep/empty.jsonl"), "").unwrap();
    let err = merge(&captures, &labels, &out).unwrap_err().to_string();
    assert!(err.contains("no captured record"), "{err}");
}
