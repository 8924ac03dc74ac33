//! The file seam between the log writer and the operating system.
//!
//! Owns the few file operations the writer performs on an open segment (append, fdatasync, truncate), a real
//! implementation over `std::fs`, and a fault-injecting implementation that tests and the simulator (`sim/`) use to fail
//! the Nth fsync, make the Nth write short, stop every later operation (a crash), tell how many bytes are not yet
//! durable, or lose everything written since the last fsync as a power cut would. It must not know the record
//! or segment formats.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Permission bits of every directory antrean creates: the server's user only. The data holds full NIKs and names.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Permission bits of every file antrean creates: read and write for the server's user only.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents with [`PRIVATE_DIR_MODE`], whatever the umask (which can only take bits away).
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(PRIVATE_DIR_MODE).create(dir)
}

/// Creates `path` (truncating an existing file) for writing with [`PRIVATE_FILE_MODE`].
pub(crate) fn create_private_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().write(true).create(true).truncate(true).mode(PRIVATE_FILE_MODE).open(path)
}

/// Refuses a data directory that other users may read, write or enter (any group or other permission bit): a
/// directory created by an older build under umask 022, or by hand. A directory that does not exist yet is fine: it
/// will be created private.
pub fn check_private_dir(dir: &Path) -> super::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = match std::fs::metadata(dir) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(super::StorageError::io("stat", dir, source)),
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & !PRIVATE_DIR_MODE != 0 {
        return Err(super::StorageError::NotPrivate { path: dir.to_owned(), mode });
    }
    Ok(())
}

/// Makes a directory's entries (created, renamed or deleted files) durable.
pub(crate) fn sync_directory(dir: &Path) -> super::Result<()> {
    File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(|source| super::StorageError::io("fsync directory", dir, source))
}

/// An open segment file, written only at its end.
pub trait LogFile: Send {
    /// Writes all of `bytes` at the end of the file.
    fn write_all_at_end(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes every byte written so far durable (fdatasync).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cuts or extends the file to `length_bytes`.
    fn set_len(&mut self, length_bytes: u64) -> io::Result<()>;
}

/// Opens existing segment files for appending. The writer opens every segment through this, so a test can inject
/// faults into segments created after a roll as well.
pub trait FileOpener: Send + Sync {
    /// Opens the existing file at `path` for appending.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn LogFile>>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFileOpener;

impl FileOpener for StdFileOpener {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn LogFile>> {
        Ok(Box::new(StdLogFile::open_append(path)?))
    }
}

/// A segment file opened through `std::fs` in append mode.
#[derive(Debug)]
pub struct StdLogFile {
    file: File,
}

impl StdLogFile {
    /// Opens the existing file at `path` so that every write lands at its end.
    pub fn open_append(path: &Path) -> io::Result<Self> {
        Ok(StdLogFile { file: OpenOptions::new().append(true).open(path)? })
    }
}

impl LogFile for StdLogFile {
    fn write_all_at_end(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&mut self, length_bytes: u64) -> io::Result<()> {
        self.file.set_len(length_bytes)
    }
}

/// Which operations fail, shared by every file a [`FaultyFileOpener`] opens. Counts are 1-based and global across
/// files; 0 means "never".
#[derive(Debug, Default)]
pub struct FaultPlan {
    sync_fail_at: AtomicU64,
    write_fail_at: AtomicU64,
    syncs: AtomicU64,
    writes: AtomicU64,
    crashed: std::sync::atomic::AtomicBool,
    files: Mutex<Vec<TrackedFile>>,
}

/// A file opened under a plan, with the length known to be durable.
#[derive(Debug)]
struct TrackedFile {
    path: PathBuf,
    written_bytes: Arc<AtomicU64>,
    synced_bytes: Arc<AtomicU64>,
}

impl FaultPlan {
    /// A plan that injects nothing until told to.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(FaultPlan::default())
    }

    /// Makes the `n`th fsync (1-based, counted across files) and every later one fail.
    pub fn fail_sync_at(&self, n: u64) {
        self.sync_fail_at.store(n, Ordering::SeqCst);
    }

    /// Makes the `n`th write write only the first half of its bytes and then fail; later writes fail outright.
    pub fn fail_write_at(&self, n: u64) {
        self.write_fail_at.store(n, Ordering::SeqCst);
    }

    /// Number of fsyncs attempted so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }

    /// Number of writes attempted so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// The process stops here, as in a crash: every later write, fsync or truncation of a file under this plan fails,
    /// so nothing more reaches the disk. Follow it with [`FaultPlan::simulate_power_loss`] once the writer has stopped.
    pub fn crash(&self) {
        self.crashed.store(true, Ordering::SeqCst);
    }

    /// Bytes written to files under this plan but not yet made durable by an fsync.
    pub fn unsynced_bytes(&self) -> u64 {
        let files = self.files.lock();
        let unsynced = |tracked: &TrackedFile| {
            let written = tracked.written_bytes.load(Ordering::SeqCst);
            written.saturating_sub(tracked.synced_bytes.load(Ordering::SeqCst))
        };
        files.iter().map(unsynced).sum()
    }

    /// Simulates a power cut: every file opened under this plan is cut back to the length it had at its last
    /// successful fsync (or when opened), plus `unsynced_bytes_kept` of what followed, to model a torn write.
    /// Call it only after the writer has stopped.
    pub fn simulate_power_loss(&self, unsynced_bytes_kept: u64) -> io::Result<()> {
        for tracked in self.files.lock().iter() {
            let file = OpenOptions::new().write(true).open(&tracked.path)?;
            let length_bytes = file.metadata()?.len();
            let kept_bytes = tracked.synced_bytes.load(Ordering::SeqCst).saturating_add(unsynced_bytes_kept);
            file.set_len(length_bytes.min(kept_bytes))?;
        }
        Ok(())
    }

    /// Counts one call and says whether it is the first to fail (`Some(true)`), a later one (`Some(false)`), or
    /// succeeds (`None`).
    fn fault(counter: &AtomicU64, fail_at: &AtomicU64) -> Option<bool> {
        let count = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let fail_at = fail_at.load(Ordering::SeqCst);
        (fail_at != 0 && count >= fail_at).then_some(count == fail_at)
    }
}

/// Opens real files whose operations fail according to a shared [`FaultPlan`].
#[derive(Clone, Debug)]
pub struct FaultyFileOpener {
    plan: Arc<FaultPlan>,
}

impl FaultyFileOpener {
    /// An opener whose files follow `plan`.
    pub fn new(plan: Arc<FaultPlan>) -> Self {
        FaultyFileOpener { plan }
    }
}

impl FileOpener for FaultyFileOpener {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn LogFile>> {
        let inner = StdLogFile::open_append(path)?;
        let length_bytes = std::fs::metadata(path)?.len();
        let synced_bytes = Arc::new(AtomicU64::new(length_bytes));
        let written_bytes = Arc::new(AtomicU64::new(length_bytes));
        self.plan.files.lock().push(TrackedFile {
            path: path.to_owned(),
            written_bytes: Arc::clone(&written_bytes),
            synced_bytes: Arc::clone(&synced_bytes),
        });
        Ok(Box::new(FaultyLogFile { inner, plan: Arc::clone(&self.plan), written_bytes, synced_bytes }))
    }
}

/// A real file that fails on the plan's schedule and remembers how much of it is durable.
struct FaultyLogFile {
    inner: StdLogFile,
    plan: Arc<FaultPlan>,
    written_bytes: Arc<AtomicU64>,
    synced_bytes: Arc<AtomicU64>,
}

impl FaultyLogFile {
    fn check_alive(&self) -> io::Result<()> {
        match self.plan.crashed.load(Ordering::SeqCst) {
            true => Err(io::Error::other("injected crash: the process has stopped")),
            false => Ok(()),
        }
    }
}

impl LogFile for FaultyLogFile {
    fn write_all_at_end(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.check_alive()?;
        match FaultPlan::fault(&self.plan.writes, &self.plan.write_fail_at) {
            Some(true) => {
                let half = &bytes[..bytes.len() / 2];
                self.inner.write_all_at_end(half)?;
                self.written_bytes.fetch_add(half.len() as u64, Ordering::SeqCst);
                return Err(io::Error::other("injected short write"));
            }
            Some(false) => return Err(io::Error::other("injected write failure")),
            None => {}
        }
        self.inner.write_all_at_end(bytes)?;
        self.written_bytes.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.check_alive()?;
        if FaultPlan::fault(&self.plan.syncs, &self.plan.sync_fail_at).is_some() {
            return Err(io::Error::other("injected fsync failure"));
        }
        self.inner.sync_data()?;
        self.synced_bytes.store(self.written_bytes.load(Ordering::SeqCst), Ordering::SeqCst);
        Ok(())
    }

    fn set_len(&mut self, length_bytes: u64) -> io::Result<()> {
        self.check_alive()?;
        self.inner.set_len(length_bytes)?;
        self.written_bytes.store(length_bytes, Ordering::SeqCst);
        self.synced_bytes.fetch_min(length_bytes, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_directories_and_files_whatever_the_umask_and_open_directories_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let root = tempfile::tempdir().unwrap();
        let nested = root.path().join("data").join("wal");
        assert!(check_private_dir(&root.path().join("data")).is_ok(), "not there yet: it will be created private");
        create_private_dir_all(&nested).unwrap();
        assert_eq!((mode(&nested), mode(nested.parent().unwrap())), (0o700, 0o700));
        drop(create_private_file(&nested.join("f")).unwrap());
        assert_eq!(mode(&nested.join("f")), 0o600);
        assert!(check_private_dir(&nested).is_ok());
        for open in [0o750, 0o701, 0o755] {
            std::fs::set_permissions(&nested, std::fs::Permissions::from_mode(open)).unwrap();
            let error = check_private_dir(&nested).unwrap_err();
            assert!(matches!(error, super::super::StorageError::NotPrivate { mode, .. } if mode == open), "{error}");
        }
    }

    #[test]
    fn faulty_file_follows_the_plan_and_loses_unsynced_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"head").unwrap();
        let plan = FaultPlan::new();
        let mut file = FaultyFileOpener::new(Arc::clone(&plan)).open_append(&path).unwrap();
        file.write_all_at_end(b"1234").unwrap();
        file.sync_data().unwrap();
        plan.fail_sync_at(2);
        plan.fail_write_at(2);
        assert!(file.write_all_at_end(b"abcdef").is_err());
        assert!(file.write_all_at_end(b"ghij").is_err());
        assert!(file.sync_data().is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"head1234abc");
        assert_eq!(plan.unsynced_bytes(), 3);
        plan.simulate_power_loss(1).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"head1234a");
        assert_eq!((plan.writes(), plan.syncs()), (3, 2));
    }

    #[test]
    fn after_a_crash_nothing_more_reaches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"head").unwrap();
        let plan = FaultPlan::new();
        let mut file = FaultyFileOpener::new(Arc::clone(&plan)).open_append(&path).unwrap();
        file.write_all_at_end(b"12").unwrap();
        plan.crash();
        assert!(file.write_all_at_end(b"34").is_err());
        assert!(file.sync_data().is_err());
        assert!(file.set_len(0).is_err());
        assert_eq!((std::fs::read(&path).unwrap(), plan.unsynced_bytes()), (b"head12".to_vec(), 2));
    }
}
