//! Pipe mode channels, fed as SageMaker feeds them: a FIFO per channel and epoch,
//! `/opt/ml/input/data/<channel>_<epoch>`, created before the container starts, filled with
//! the host's share of the channel's objects (in key order, gunzipped when `CompressionType`
//! is `Gzip`) once the container opens it, and followed by the next epoch's FIFO when it has
//! been read to the end. The objects are staged outside the job's `/opt/ml` tree first, so
//! the container sees only the stream; under Docker the FIFOs reach it through the tree's
//! mount, as the platform's do.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::JobFailure;

/// How often a feeder looks for the container opening its FIFO (or the job ending).
const POLL: Duration = Duration::from_millis(20);

/// One host's Pipe channel: where its FIFOs go and the staged files that fill every epoch.
#[derive(Debug, Clone)]
pub(super) struct PipeChannel {
    /// The host's `input/data` directory.
    pub data_dir: PathBuf,
    pub name: String,
    /// Staged objects, in key order.
    pub files: Vec<PathBuf>,
    pub gzip: bool,
}

impl PipeChannel {
    fn fifo(&self, epoch: u64) -> PathBuf {
        self.data_dir.join(format!("{}_{epoch}", self.name))
    }
}

/// The feeders of a job's Pipe channels, stopped (and their FIFOs removed) on drop, which
/// comes after the containers have exited.
pub(super) struct Feeders {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    fifos_in: Vec<PipeChannel>,
}

/// Create every channel's epoch-0 FIFO and start its feeder.
pub(super) fn feed(channels: Vec<PipeChannel>) -> Result<Feeders, JobFailure> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut feeders = Feeders { stop: stop.clone(), threads: Vec::new(), fifos_in: channels.clone() };
    for channel in channels {
        make_fifo(&channel.fifo(0))?;
        let stop = stop.clone();
        feeders.threads.push(std::thread::spawn(move || run_feeder(&channel, &stop)));
    }
    Ok(feeders)
}

impl Drop for Feeders {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        for channel in &self.fifos_in {
            remove_fifos(channel);
        }
    }
}

/// Epoch after epoch until the job ends: wait for a reader, write the channel, close.
fn run_feeder(channel: &PipeChannel, stop: &AtomicBool) {
    for epoch in 0.. {
        let fifo = channel.fifo(epoch);
        if epoch > 0
            && let Err(err) = make_fifo(&fifo)
        {
            tracing::warn!("Pipe channel `{}`: {}", channel.name, err.message);
            return;
        }
        let Some(mut writer) = open_when_read(&fifo, stop) else { return };
        match write_epoch(channel, &mut writer) {
            Ok(bytes) => tracing::debug!(channel = channel.name, epoch, bytes, "fed a Pipe mode epoch"),
            // The container stopped reading (it needed less, or it failed): its business.
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {}
            Err(err) => {
                tracing::warn!("Pipe channel `{}`, epoch {epoch}: {err}", channel.name);
                return;
            }
        }
    }
}

/// The FIFO opened for writing once the container has opened it for reading; `None` when
/// the job ends first.
fn open_when_read(fifo: &Path, stop: &AtomicBool) -> Option<File> {
    loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        // Without a reader a non-blocking open fails with ENXIO rather than waiting, so the
        // feeder can notice the job ending.
        match std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(fifo) {
            Ok(file) => return blocking(file).ok(),
            Err(err) if err.raw_os_error() == Some(libc::ENXIO) => std::thread::sleep(POLL),
            Err(err) => {
                tracing::warn!("opening {}: {err}", fifo.display());
                return None;
            }
        }
    }
}

/// Writes that wait for the reader, as the platform's do.
fn blocking(file: File) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function owns, with flags it just read.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// One epoch: every staged object, in order, decompressed if the channel is gzipped.
fn write_epoch(channel: &PipeChannel, writer: &mut File) -> io::Result<u64> {
    let mut bytes = 0;
    for path in &channel.files {
        let file = File::open(path)?;
        let mut reader: Box<dyn Read> =
            if channel.gzip { Box::new(flate2::read::MultiGzDecoder::new(file)) } else { Box::new(file) };
        bytes += io::copy(&mut reader, writer).map_err(|e| with_path(e, path))?;
    }
    writer.flush()?;
    Ok(bytes)
}

fn with_path(err: io::Error, path: &Path) -> io::Error {
    if err.kind() == io::ErrorKind::BrokenPipe {
        return err;
    }
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

fn make_fifo(path: &Path) -> Result<(), JobFailure> {
    use std::os::unix::ffi::OsStrExt;
    if let Some(dir) = path.parent() {
        super::create_dir(dir)?;
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| JobFailure::service(format!("{}: a NUL in the path", path.display())))?;
    // SAFETY: a valid NUL-terminated path; mkfifo does not keep it.
    if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
        let err = io::Error::last_os_error();
        return Err(JobFailure::service(format!("creating the FIFO {}: {err}", path.display())));
    }
    Ok(())
}

/// Every `<channel>_<epoch>` FIFO the feeder made.
fn remove_fifos(channel: &PipeChannel) {
    let prefix = format!("{}_", channel.name);
    let Ok(entries) = std::fs::read_dir(&channel.data_dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let epoch = name.to_str().and_then(|n| n.strip_prefix(&prefix));
        if epoch.is_some_and(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_fifo(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        File::open(path).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn each_epoch_streams_every_object_in_order_and_fifos_go_when_the_job_ends() {
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("staged");
        std::fs::create_dir_all(&staged).unwrap();
        let (a, b) = (staged.join("a.csv"), staged.join("b.csv.gz"));
        std::fs::write(&a, "1,2\n").unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"3,4\n").unwrap();
        std::fs::write(&b, gz.finish().unwrap()).unwrap();
        let data_dir = dir.path().join("input/data");
        let plain =
            PipeChannel { data_dir: data_dir.clone(), name: "train".into(), files: vec![a.clone()], gzip: false };
        let zipped = PipeChannel { data_dir: data_dir.clone(), name: "validation".into(), files: vec![b], gzip: true };
        let feeders = feed(vec![plain, zipped]).unwrap();
        assert_eq!(read_fifo(&data_dir.join("train_0")), b"1,2\n");
        assert_eq!(read_fifo(&data_dir.join("validation_0")), b"3,4\n");
        // The next epoch appears once the last one was read through.
        let next = data_dir.join("train_1");
        for _ in 0..250 {
            if next.exists() {
                break;
            }
            std::thread::sleep(POLL);
        }
        assert_eq!(read_fifo(&next), b"1,2\n");
        drop(feeders);
        let left: Vec<_> = std::fs::read_dir(&data_dir).unwrap().collect();
        assert!(left.is_empty(), "the FIFOs are removed: {left:?}");
    }

    #[test]
    fn a_reader_that_stops_early_or_never_comes_does_not_hold_the_job() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 4 << 20]).unwrap();
        let data_dir = dir.path().join("data");
        let channel = PipeChannel { data_dir: data_dir.clone(), name: "train".into(), files: vec![big], gzip: false };
        let feeders = feed(vec![channel.clone(), PipeChannel { name: "unread".into(), ..channel }]).unwrap();
        let mut reader = File::open(data_dir.join("train_0")).unwrap();
        let mut first = [0u8; 10];
        reader.read_exact(&mut first).unwrap();
        drop(reader);
        let started = std::time::Instant::now();
        drop(feeders);
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }
}
