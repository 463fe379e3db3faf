//! The ground-truth merge: SageMaker's `groundtruth-merge` job (its environment:
//! `dataset_source`, `ground_truth_source`, `output_path`), which joins captured records with
//! ground-truth records for a model-quality analysis.
//!
//! - Key: a capture's `eventMetadata.inferenceId` when it has one, else its `eventId`, equal to
//!   a ground-truth record's `eventMetadata.eventId` (DG model-monitor-model-quality-merge).
//! - Output: the capture record byte for byte with `"groundTruthData"` added, in
//!   `{output_path}/{the capture file's folder below dataset_source}/part-00000-<uuid>.c000.jsonl`,
//!   so records stay partitioned by their capture hour (`{endpoint}/{variant}/yyyy/mm/dd/hh`).
//! - Rules AWS does not publish, decided here: an inner join (captures without ground truth and
//!   ground truth without a capture are left out, and counted); a ground-truth id given twice
//!   keeps the last one read (files in path order, so a later hour's correction wins); every
//!   capture is its own event, so two captures with one id both merge; a line that is not a
//!   record is skipped with a warning naming its file and line, and counted.
//! - Failure, as on SageMaker: no captured record, no ground-truth record, or nothing matched.
//! - Memory: the ground truth is held by id (about 60 bytes a record plus its data); captures
//!   stream.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Error;
use super::dataset::{Lines, data_files};

/// Lines named in the warnings at most (the rest are counted).
const NAMED_PROBLEMS: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MergeSummary {
    pub capture_files: usize,
    pub ground_truth_files: usize,
    pub captures: u64,
    pub ground_truth: u64,
    pub merged: u64,
    pub unmatched_captures: u64,
    pub unmatched_ground_truth: u64,
    pub duplicate_ground_truth: u64,
    pub broken_lines: u64,
    /// `file, line N: problem` for the first broken lines.
    pub problems: Vec<String>,
    pub output_files: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct GroundTruthLine {
    #[serde(rename = "groundTruthData")]
    data: GroundTruthData,
    #[serde(rename = "eventMetadata")]
    metadata: GroundTruthMetadata,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct GroundTruthData {
    data: String,
    #[serde(default = "csv")]
    encoding: String,
}

fn csv() -> String {
    "CSV".into()
}

#[derive(Deserialize)]
struct GroundTruthMetadata {
    #[serde(rename = "eventId")]
    event_id: String,
}

#[derive(Deserialize)]
struct CaptureLine<'a> {
    #[serde(rename = "eventMetadata", borrow)]
    metadata: CaptureMetadata<'a>,
}

#[derive(Deserialize)]
struct CaptureMetadata<'a> {
    #[serde(rename = "eventId", borrow, default)]
    event_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "inferenceId", borrow, default)]
    inference_id: Option<std::borrow::Cow<'a, str>>,
}

/// Ground truth by id: the serialized `groundTruthData` and whether a capture used it.
struct Truths {
    by_id: HashMap<Box<str>, (Box<str>, bool)>,
}

impl MergeSummary {
    fn broken(&mut self, file: &Path, line: u64, problem: &str) {
        self.broken_lines += 1;
        let text = format!("{}, line {line}: {problem}", file.display());
        tracing::warn!("skipped: {text}");
        if self.problems.len() < NAMED_PROBLEMS {
            self.problems.push(text);
        }
    }
}

/// Merge every capture under `captures` with the ground truth under `ground_truth`.
pub fn merge(captures: &Path, ground_truth: &Path, output: &Path) -> Result<MergeSummary, Error> {
    let mut summary = MergeSummary::default();
    let truths = read_ground_truth(ground_truth, &mut summary)?;
    let capture_files = data_files(captures)?;
    summary.capture_files = capture_files.len();
    let mut truths = truths;
    let mut writers: HashMap<PathBuf, Part> = HashMap::new();
    let result = (|| {
        for file in &capture_files {
            merge_file(captures, file, output, &mut truths, &mut writers, &mut summary)?;
        }
        let mut finished = Vec::new();
        for (_, mut part) in writers.drain() {
            let synced = part.writer.flush().and_then(|()| part.writer.get_ref().sync_all());
            synced.map_err(|source| Error::Write { path: part.partial.clone(), source })?;
            finished.push((part.partial, part.path));
        }
        Ok::<_, Error>(finished)
    })();
    let finished = match result {
        Ok(finished) => finished,
        Err(e) => {
            for (_, part) in writers.drain() {
                let _ = std::fs::remove_file(part.partial);
            }
            return Err(e);
        }
    };
    summary.unmatched_ground_truth = truths.by_id.values().filter(|(_, used)| !used).count() as u64;
    if summary.captures == 0 || summary.merged == 0 {
        for (partial, _) in &finished {
            let _ = std::fs::remove_file(partial);
        }
        let why = if summary.captures == 0 {
            format!("no captured record under `{}`", captures.display())
        } else {
            format!(
                "none of the {} captured records has ground truth under `{}` (joined by eventMetadata.inferenceId, else eventId)",
                summary.captures,
                ground_truth.display()
            )
        };
        return Err(Error::NoData { path: captures.to_path_buf(), detail: format!(": {why}") });
    }
    for (partial, path) in finished {
        std::fs::rename(&partial, &path).map_err(|source| Error::Write { path: path.clone(), source })?;
        summary.output_files.push(path);
    }
    summary.output_files.sort();
    Ok(summary)
}

fn read_ground_truth(dir: &Path, summary: &mut MergeSummary) -> Result<Truths, Error> {
    let files = data_files(dir).map_err(|e| match e {
        Error::NoData { path, detail } => Error::NoData { path, detail: format!("{detail} (no ground truth)") },
        other => other,
    })?;
    summary.ground_truth_files = files.len();
    let mut by_id: HashMap<Box<str>, (Box<str>, bool)> = HashMap::new();
    for file in &files {
        let mut lines = Lines::open(file)?;
        loop {
            let line = match lines.next() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(Error::Malformed { file, line, problem }) => {
                    summary.broken(&file, line, &problem);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match serde_json::from_slice::<GroundTruthLine>(line) {
                Ok(record) => {
                    summary.ground_truth += 1;
                    let data = serde_json::to_string(&record.data).expect("serializes");
                    let previous =
                        by_id.insert(record.metadata.event_id.into_boxed_str(), (data.into_boxed_str(), false));
                    summary.duplicate_ground_truth += u64::from(previous.is_some());
                }
                Err(e) => summary.broken(file, lines.number, &format!("not a ground-truth record: {e}")),
            }
        }
    }
    if summary.ground_truth == 0 {
        return Err(Error::NoData {
            path: dir.to_path_buf(),
            detail: format!(": {} file(s) but no ground-truth record", files.len()),
        });
    }
    Ok(Truths { by_id })
}

/// One output file, written beside its final name until the merge succeeds.
struct Part {
    partial: PathBuf,
    path: PathBuf,
    writer: std::io::BufWriter<std::fs::File>,
}

impl Part {
    fn create(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write { path: dir.to_path_buf(), source })?;
        let name = format!("part-00000-{}.c000.jsonl", uuid::Uuid::new_v4());
        let partial = dir.join(format!(".{name}.partial"));
        let handle =
            std::fs::File::create(&partial).map_err(|source| Error::Write { path: partial.clone(), source })?;
        Ok(Self { partial, path: dir.join(name), writer: std::io::BufWriter::with_capacity(1 << 16, handle) })
    }
}

fn merge_file(
    root: &Path,
    file: &Path,
    output: &Path,
    truths: &mut Truths,
    writers: &mut HashMap<PathBuf, Part>,
    summary: &mut MergeSummary,
) -> Result<(), Error> {
    let folder = file.parent().and_then(|p| p.strip_prefix(root).ok()).unwrap_or(Path::new("")).to_path_buf();
    let mut lines = Lines::open(file)?;
    loop {
        let line = match lines.next() {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(()),
            Err(Error::Malformed { file, line, problem }) => {
                summary.broken(&file, line, &problem);
                continue;
            }
            Err(e) => return Err(e),
        };
        let id = match serde_json::from_slice::<CaptureLine<'_>>(line) {
            Ok(record) => record.metadata.inference_id.or(record.metadata.event_id).map(|c| c.into_owned()),
            Err(e) => {
                summary.broken(file, lines.number, &format!("not a capture record: {e}"));
                continue;
            }
        };
        let Some(id) = id else {
            summary.broken(file, lines.number, "the capture record has no eventMetadata.eventId");
            continue;
        };
        summary.captures += 1;
        let Some((data, used)) = truths.by_id.get_mut(id.as_str()) else {
            summary.unmatched_captures += 1;
            continue;
        };
        *used = true;
        let body = line.trim_ascii_end();
        let Some(open) = body.strip_suffix(b"}") else {
            summary.broken(file, lines.number, "the capture record does not end with `}`");
            continue;
        };
        if !writers.contains_key(&folder) {
            writers.insert(folder.clone(), Part::create(&output.join(&folder))?);
        }
        let part = writers.get_mut(&folder).expect("inserted");
        let write = |w: &mut std::io::BufWriter<std::fs::File>| -> std::io::Result<()> {
            w.write_all(open)?;
            w.write_all(b",\"groundTruthData\":")?;
            w.write_all(data.as_bytes())?;
            w.write_all(b"}\n")
        };
        write(&mut part.writer).map_err(|source| Error::Write { path: part.partial.clone(), source })?;
        summary.merged += 1;
    }
}

/// The merge job's environment name for the ground truth's directory.
pub const GROUND_TRUTH_SOURCE: &str = "ground_truth_source";

/// The merge as a processing job: `dataset_source`, `ground_truth_source`, `output_path`
/// (paths under `/opt/ml` mapped onto the job's root); the summary in `/opt/ml/output/message`.
pub fn run(ml: &crate::contract::MlRoot, given: &super::settings::Given) -> Result<MergeSummary, Error> {
    use super::settings::{job_environment, map_path, names};
    let job = job_environment(ml)?;
    let get = |name: &str| given.values.get(name).cloned().or_else(|| job.get(name).cloned()).filter(|v| !v.is_empty());
    let captures = get(names::DATASET_SOURCE).ok_or(Error::Missing {
        name: names::DATASET_SOURCE,
        hint: "give the directory of the captured records, e.g. /opt/ml/processing/input_data",
    })?;
    let truth = get(GROUND_TRUTH_SOURCE).ok_or(Error::Missing {
        name: GROUND_TRUTH_SOURCE,
        hint: "give the directory of the ground-truth records, e.g. /opt/ml/processing/groundtruth",
    })?;
    let output = get(names::OUTPUT_PATH).map_or_else(|| ml.processing_path("output"), |v| map_path(ml, &v));
    let summary = merge(&map_path(ml, &captures), &map_path(ml, &truth), &output)?;
    let message = format!(
        "Completed: merged {} of {} captured records with {} ground-truth records ({} captures and {} labels \
         unmatched, {} duplicate labels, {} broken lines skipped)",
        summary.merged,
        summary.captures,
        summary.ground_truth,
        summary.unmatched_captures,
        summary.unmatched_ground_truth,
        summary.duplicate_ground_truth,
        summary.broken_lines
    );
    let mut text = message.clone();
    for problem in &summary.problems {
        text += &format!("\n{}", ml.shown(problem));
    }
    tracing::info!("{message}");
    if let Err(e) = crate::storage::write_atomic(&ml.processing_message_file(), text.as_bytes()) {
        tracing::warn!("could not write the message: {e}");
    }
    Ok(summary)
}

#[cfg(test)]
mod tests;
