use super::*;
use crate::monitor::model_quality::ProblemType;

fn job(dir: &Path, format: Format, attributes: Attributes) -> Job {
    Job {
        problem: ProblemType::Regression,
        format,
        attributes,
        source: dir.to_path_buf(),
        output: dir.join("out"),
        baseline_constraints: None,
        publish_metrics: false,
        endpoint_name: None,
        schedule_name: None,
        start_time: None,
        end_time: None,
        metric_time: None,
    }
}

fn attributes(truth: Option<&str>, inference: Option<&str>, probability: Option<&str>) -> Attributes {
    Attributes {
        ground_truth: truth.map(Into::into),
        inference: inference.map(Into::into),
        probability: probability.map(Into::into),
        threshold: None,
    }
}

/// Every pair read, as (truth, prediction, probability) strings.
fn pairs(job: &Job) -> Result<Vec<(String, String, String)>, Error> {
    let mut out = Vec::new();
    rows::read(job, &mut |p: Pair<'_>| {
        let text = |v: Option<Cow<'_, str>>| v.map(|c| c.into_owned()).unwrap_or_default();
        out.push((p.truth.into_owned(), text(p.prediction), text(p.probability)));
        Ok(())
    })?;
    Ok(out)
}

fn tuple(t: &str, p: &str, q: &str) -> (String, String, String) {
    (t.into(), p.into(), q.into())
}

use super::super::rows;

#[test]
fn csv_by_header_names_and_by_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "probability,prediction,label\n0.9,1,1\n0.2,0,1\n").unwrap();
    let a = attributes(Some("label"), Some("prediction"), Some("probability"));
    let got = pairs(&job(dir.path(), Format::Csv { header: true }, a)).unwrap();
    assert_eq!(got, [tuple("1", "1", "0.9"), tuple("1", "0", "0.2")]);

    let a = attributes(Some("nope"), Some("prediction"), None);
    let err = pairs(&job(dir.path(), Format::Csv { header: true }, a)).unwrap_err().to_string();
    assert!(err.contains("a.csv, line 1") && err.contains("`ground_truth_attribute` `nope`"), "{err}");
    assert!(err.contains("(probability, prediction, label)"), "{err}");

    std::fs::write(dir.path().join("a.csv"), "0.9,1,1\n0.2,0\n").unwrap();
    let a = attributes(Some("_c2"), Some("1"), None);
    let err = pairs(&job(dir.path(), Format::Csv { header: false }, a)).unwrap_err().to_string();
    assert!(err.contains("a.csv, line 2: the row has 2 fields; the attributes need column 2"), "{err}");
}

#[test]
fn json_lines_by_key_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let lines = "{\"label\": 1, \"out\": {\"predictions\": [{\"score\": 0.75, \"predicted_label\": 1}]}}\n";
    std::fs::write(dir.path().join("a.jsonl"), lines).unwrap();
    let a = attributes(Some("label"), Some("out.predictions[0].predicted_label"), Some("$.out.predictions[0].score"));
    let got = pairs(&job(dir.path(), Format::Json { lines: true }, a)).unwrap();
    assert_eq!(got, [tuple("1", "1", "0.75")]);
    let a = attributes(Some("label"), Some("out.predictions[1].score"), None);
    let err = pairs(&job(dir.path(), Format::Json { lines: true }, a)).unwrap_err().to_string();
    assert!(
        err.contains("a.jsonl, line 1: `inference_attribute` `out.predictions[1].score` is not in the record"),
        "{err}"
    );
}

fn merged(output: &str, output_encoding: &str, truth: &str, truth_encoding: &str, time: &str) -> String {
    serde_json::json!({
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2,3", "encoding": "CSV"},
            "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": output, "encoding": output_encoding},
        },
        "eventMetadata": {"eventId": "e", "inferenceId": "7", "inferenceTime": time},
        "eventVersion": "0",
        "groundTruthData": {"data": truth, "encoding": truth_encoding},
    })
    .to_string()
}

#[test]
fn merged_records_index_the_captured_output_and_filter_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let records = [
        merged("0.25,1", "CSV", "1", "CSV", "2021-05-06T22:10:00Z"),
        merged("0.5\n0.75", "CSV", "0\n1", "CSV", "2021-05-06T22:59:59Z"),
        merged("{\"predictions\": [{\"score\": 0.125}]}", "JSON", "{\"label\": 0}", "JSON", "2021-05-06T22:30:00Z"),
        merged("9", "CSV", "9", "CSV", "2021-05-06T23:00:00Z"),
    ];
    std::fs::write(dir.path().join("part-00000.c000.jsonl"), records.join("\n")).unwrap();
    let format = Format::Merged { capture: Capture::EndpointOutput };
    let mut j = job(dir.path(), format, attributes(None, Some("0"), None));
    j.start_time = Some("2021-05-06T22:00:00Z".into());
    j.end_time = Some("2021-05-06T23:00:00Z".into());
    // The JSON record needs paths: read the CSV ones with an index first.
    std::fs::write(
        dir.path().join("part-00000.c000.jsonl"),
        [&records[0], &records[1], &records[3]].map(|s| s.as_str()).join("\n"),
    )
    .unwrap();
    assert_eq!(pairs(&j).unwrap(), [tuple("1", "0.25", ""), tuple("0", "0.5", ""), tuple("1", "0.75", "")]);

    std::fs::write(dir.path().join("part-00000.c000.jsonl"), &records[2]).unwrap();
    j.attributes = attributes(Some("label"), Some("predictions[0].score"), None);
    assert_eq!(pairs(&j).unwrap(), [tuple("0", "0.125", "")]);
}

#[test]
fn merged_records_refuse_base64_and_mismatched_counts_by_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let format = Format::Merged { capture: Capture::EndpointOutput };
    let j = job(dir.path(), format, attributes(None, Some("0"), None));
    let file = dir.path().join("m.jsonl");
    std::fs::write(
        &file,
        format!("{}\n{}\n", merged("1", "CSV", "1", "CSV", "t"), merged("MC4y", "BASE64", "1", "CSV", "t")),
    )
    .unwrap();
    let err = pairs(&j).unwrap_err().to_string();
    assert!(err.contains("m.jsonl, line 2: captureData.endpointOutput is BASE64-encoded"), "{err}");
    assert!(err.contains("CsvContentTypes"), "{err}");
    std::fs::write(&file, merged("1\n2", "CSV", "1", "CSV", "t")).unwrap();
    let err = pairs(&j).unwrap_err().to_string();
    assert!(
        err.contains("m.jsonl, line 1: captureData.endpointOutput has 2 CSV records but groundTruthData 1"),
        "{err}"
    );
    let j = job(dir.path(), format, attributes(None, Some("3"), None));
    std::fs::write(&file, merged("1,2", "CSV", "1", "CSV", "t")).unwrap();
    let err = pairs(&j).unwrap_err().to_string();
    assert!(err.contains("`inference_attribute` is column 3 but the CSV data has 2 column(s)"), "{err}");
}
