//! SageMaker's container contracts: the `/opt/ml` layout, its config files, the failure
//! channels and the environment variables, each named once here.
//!
//! Every path hangs off one root, `/opt/ml` on SageMaker, overridable with `SAGESTEP_ML_ROOT`
//! so that each step also runs as a plain local process against a temporary directory.

pub mod env;
pub mod failure;

use std::path::{Path, PathBuf};

/// The `/opt/ml` tree of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlRoot {
    root: PathBuf,
}

impl MlRoot {
    /// SageMaker's fixed root.
    pub const DEFAULT: &'static str = "/opt/ml";

    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root from `SAGESTEP_ML_ROOT`, else `/opt/ml`.
    pub fn from_env() -> Self {
        match std::env::var_os(env::SAGESTEP_ML_ROOT) {
            Some(root) if !root.is_empty() => Self::new(root),
            _ => Self::new(Self::DEFAULT),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A container path under `/opt/ml` (as config files name them) in this tree; other
    /// paths as given. The identity on SageMaker.
    pub fn map(&self, container_path: &Path) -> PathBuf {
        match container_path.strip_prefix(Self::DEFAULT) {
            Ok(rest) if self.root != Path::new(Self::DEFAULT) => self.root.join(rest),
            _ => container_path.to_path_buf(),
        }
    }

    /// A text with the paths in it as the container sees them: a path under this tree is
    /// shown below `/opt/ml`, as on SageMaker; anything else as given. Records, reports and
    /// messages name paths this way, whichever engine ran the job.
    pub fn shown(&self, text: &str) -> String {
        let root = self.root.to_string_lossy();
        let root = root.trim_end_matches('/');
        if root.is_empty() || root == Self::DEFAULT {
            return text.to_string();
        }
        let path_char = |c: char| c.is_alphanumeric() || matches!(c, '/' | '.' | '_' | '-');
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(root) {
            let after = &rest[at + root.len()..];
            let starts = rest[..at].chars().next_back().is_none_or(|c| !path_char(c));
            let ends = after.chars().next().is_none_or(|c| c == '/' || !path_char(c));
            out.push_str(&rest[..at]);
            out.push_str(if starts && ends { Self::DEFAULT } else { root });
            rest = after;
        }
        out.push_str(rest);
        out
    }

    // --- Processing jobs -------------------------------------------------------------------

    /// Every ProcessingInput and ProcessingOutput `LocalPath` lies under this directory.
    pub fn processing_dir(&self) -> PathBuf {
        self.root.join("processing")
    }

    /// Where a ProcessingInput of the given name is conventionally placed.
    pub fn processing_path(&self, name: &str) -> PathBuf {
        self.processing_dir().join(name)
    }

    /// `/opt/ml/config/processingjobconfig.json`: the processing request, echoed.
    pub fn processing_job_config(&self) -> PathBuf {
        self.root.join("config").join("processingjobconfig.json")
    }

    /// `/opt/ml/config/resourceconfig.json`: a processing job's instances (`current_host`,
    /// `hosts`); training jobs have theirs under `input/config`.
    pub fn processing_resource_config(&self) -> PathBuf {
        self.root.join("config").join("resourceconfig.json")
    }

    // --- Training jobs ---------------------------------------------------------------------

    pub fn input_config_dir(&self) -> PathBuf {
        self.root.join("input").join("config")
    }

    pub fn hyperparameters(&self) -> PathBuf {
        self.input_config_dir().join("hyperparameters.json")
    }

    pub fn input_data_config(&self) -> PathBuf {
        self.input_config_dir().join("inputdataconfig.json")
    }

    pub fn resource_config(&self) -> PathBuf {
        self.input_config_dir().join("resourceconfig.json")
    }

    pub fn checkpoint_config(&self) -> PathBuf {
        self.input_config_dir().join("checkpointconfig.json")
    }

    /// `/opt/ml/input/data/<channel>/` in File and FastFile modes.
    pub fn channel_dir(&self, channel: &str) -> PathBuf {
        self.root.join("input").join("data").join(channel)
    }

    /// `/opt/ml/model/`: packed into `model.tar.gz` after training, unpacked here for serving.
    pub fn model_dir(&self) -> PathBuf {
        self.root.join("model")
    }

    /// `/opt/ml/output/data/`: packed into `output.tar.gz`.
    pub fn output_data_dir(&self) -> PathBuf {
        self.root.join("output").join("data")
    }

    /// `/opt/ml/checkpoints/`: the default checkpoint `LocalPath`.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    // --- Failure channels ------------------------------------------------------------------

    /// A training job's `FailureReason` (first 1024 characters).
    pub fn training_failure_file(&self) -> PathBuf {
        self.root.join("output").join("failure")
    }

    /// A processing job's `ExitMessage` (first 1 KB, UTF-8).
    pub fn processing_message_file(&self) -> PathBuf {
        self.root.join("output").join("message")
    }
}

impl Default for MlRoot {
    fn default() -> Self {
        Self::from_env()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_hang_off_the_root() {
        let ml = MlRoot::new("/tmp/x");
        assert_eq!(ml.processing_path("input"), Path::new("/tmp/x/processing/input"));
        assert_eq!(ml.hyperparameters(), Path::new("/tmp/x/input/config/hyperparameters.json"));
        assert_eq!(ml.channel_dir("train"), Path::new("/tmp/x/input/data/train"));
        assert_eq!(ml.processing_message_file(), Path::new("/tmp/x/output/message"));
        assert_eq!(ml.training_failure_file(), Path::new("/tmp/x/output/failure"));
    }

    #[test]
    fn paths_are_shown_as_the_container_sees_them() {
        let ml = MlRoot::new("/tmp/x");
        assert_eq!(
            ml.shown("/tmp/x/processing/model/model.tar.gz!xgboost-model"),
            "/opt/ml/processing/model/model.tar.gz!xgboost-model"
        );
        assert_eq!(ml.shown("/tmp/x"), "/opt/ml");
        assert_eq!(ml.shown("/tmp/xy/model"), "/tmp/xy/model", "another directory whose name starts alike");
        assert_eq!(ml.shown("/data/model"), "/data/model");
        assert_eq!(
            ml.shown("`/tmp/x/input/data/train/a.csv`, line 3; see /tmp/x/output and /tmp/x2/y"),
            "`/opt/ml/input/data/train/a.csv`, line 3; see /opt/ml/output and /tmp/x2/y"
        );
        assert_eq!(MlRoot::new("/tmp/x/").shown("/tmp/x/model"), "/opt/ml/model");
        assert_eq!(MlRoot::new("/opt/ml").shown("/opt/ml/model"), "/opt/ml/model");
    }
}
