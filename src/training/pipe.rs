//! Channel inputs by `TrainingInputMode`. File and FastFile channels are directories of files.
//! A Pipe channel is a FIFO per epoch, `/opt/ml/input/data/<channel>_<epoch>`, that SageMaker
//! fills from S3 as it is read. The trainer reads epoch 0 once, in one streaming pass, into a
//! spool file beside it, and then reads the spool as it reads a File channel (several passes,
//! quantized): memory stays bounded, the disk holds the channel once, and every format the
//! File mode reads (gzip included) reads the same from a pipe.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::config::ChannelConfig;
use super::error::Error;
use crate::contract::MlRoot;

/// Where each channel's data is, for as long as it is needed (spools are removed on drop).
pub struct ChannelPaths {
    pub train: PathBuf,
    pub validation: Option<PathBuf>,
    _spools: Vec<Spool>,
}

impl ChannelPaths {
    /// Channels at these paths, nothing to remove.
    pub fn new(train: PathBuf, validation: Option<PathBuf>) -> Self {
        Self { train, validation, _spools: Vec::new() }
    }
}

/// The paths of `train` (and `validation`, if present), spooling Pipe channels.
pub fn resolve(
    ml: &MlRoot,
    channels: &std::collections::BTreeMap<String, ChannelConfig>,
    has_validation: bool,
) -> Result<ChannelPaths, Error> {
    let mut spools = Vec::new();
    let mut path_of = |name: &str| -> Result<PathBuf, Error> {
        let pipe = channels.get(name).and_then(|c| c.training_input_mode.as_deref()) == Some("Pipe");
        if !pipe {
            return Ok(ml.channel_dir(name));
        }
        let spool = Spool::fill(ml, name)?;
        let path = spool.path.clone();
        spools.push(spool);
        Ok(path)
    };
    let train = path_of("train")?;
    let validation = if has_validation { Some(path_of("validation")?) } else { None };
    Ok(ChannelPaths { train, validation, _spools: spools })
}

/// A Pipe channel's epoch 0, copied to a file.
struct Spool {
    path: PathBuf,
}

impl Spool {
    fn fill(ml: &MlRoot, channel: &str) -> Result<Self, Error> {
        let data = ml.root().join("input").join("data");
        let fifo = data.join(format!("{channel}_0"));
        // A file, not a directory: the channel check reads directories as channels.
        let spool = Self { path: data.join(format!("{channel}.pipe-spool")) };
        let started = std::time::Instant::now();
        let bytes = copy(&fifo, &spool.path).map_err(|e| match e {
            CopyError::Read(e) if e.kind() == std::io::ErrorKind::NotFound => Error::Channel(format!(
                "channel `{channel}` is in Pipe mode but `{}` does not exist (SageMaker creates a FIFO per channel and epoch)",
                fifo.display()
            )),
            CopyError::Read(source) => Error::Config { path: fifo.clone(), source },
            CopyError::Write(source) => Error::Write { path: spool.path.clone(), source },
        })?;
        tracing::info!(channel, bytes, seconds = started.elapsed().as_secs_f64(), "read the Pipe mode channel");
        Ok(spool)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

enum CopyError {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Copy the FIFO to `dest` through a fixed buffer; the bytes copied.
fn copy(fifo: &Path, dest: &Path) -> Result<u64, CopyError> {
    let mut from = std::fs::File::open(fifo).map_err(CopyError::Read)?;
    let mut to = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dest).map_err(CopyError::Write)?);
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        to.write_all(&buffer[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
    to.flush().map_err(CopyError::Write)?;
    Ok(total)
}
