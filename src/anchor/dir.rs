//! The local anchor directory: one file per anchored checkpoint, `<size, 20 digits>.checkpoint`,
//! written to a temporary name, fsynced, made read-only (0444), renamed into place and the
//! directory fsynced. An existing file for the same size is left as it is (the same size was
//! chosen once, so its content is the same).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{Backend, BoxFuture};

/// The directory anchor.
pub struct DirAnchor {
    dir: PathBuf,
}

use ledger_format::anchor::file_name;

impl DirAnchor {
    /// Creates the directory if needed.
    pub fn new(dir: &Path) -> std::io::Result<DirAnchor> {
        std::fs::create_dir_all(dir)?;
        Ok(DirAnchor {
            dir: dir.to_path_buf(),
        })
    }

    fn write(&self, size: u64, checkpoint: &str) -> std::io::Result<()> {
        let path = self.dir.join(file_name(size));
        if path.exists() {
            return Ok(());
        }
        let tmp = self.dir.join(format!(".{}.tmp", file_name(size)));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(checkpoint.as_bytes())?;
        f.sync_all()?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o444))?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

impl Backend for DirAnchor {
    fn name(&self) -> &'static str {
        "dir"
    }

    fn publish<'a>(&'a self, size: u64, checkpoint: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let (this, note) = (self.dir.clone(), checkpoint.to_owned());
            let d = DirAnchor { dir: this };
            tokio::task::spawn_blocking(move || d.write(size, &note))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{}: {e}", self.dir.display()))
        })
    }
}
