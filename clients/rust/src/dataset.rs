//! Dataset fingerprints (SPEC.md §6), identical in the Rust CLI and the Python
//! client:
//!
//! - a file: SHA-256 of its bytes;
//! - a directory: SHA-256 of its manifest, one line per regular file below it,
//!   `<sha256 hex>  <size in bytes>  <path relative to the directory, '/'-separated>\n`, sorted by
//!   path as UTF-8 bytes; symbolic links are refused (a link could point anywhere).
//!
//! Written as `sha256:<hex>`. Hashing streams 1 MiB at a time, so memory stays flat whatever the
//! dataset size.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Reports bytes hashed so far (for progress output).
pub type Progress<'a> = &'a mut dyn FnMut(u64);

/// Returns the SHA-256 (hex) and size of a file, streaming.
pub fn hash_file(path: &Path, progress: Progress) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
        progress(n as u64);
    }
    Ok((hex::encode(h.finalize()), size))
}

/// Returns every regular file below `dir` with its path relative to `dir` ('/'-separated),
/// refusing symbolic links and non-UTF-8 names.
pub fn files_below(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let e = e?;
            let path = e.path();
            let ft = e.file_type()?;
            if ft.is_symlink() {
                bail!(
                    "{} is a symbolic link; dataset fingerprints refuse links",
                    path.display()
                );
            }
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let rel = path
                    .strip_prefix(dir)
                    .expect("below the directory")
                    .components()
                    .map(|c| {
                        c.as_os_str()
                            .to_str()
                            .map(str::to_owned)
                            .with_context(|| format!("{} is not a UTF-8 name", path.display()))
                    })
                    .collect::<Result<Vec<_>>>()?
                    .join("/");
                out.push((rel, path));
            }
        }
    }
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(out)
}

/// Returns the manifest of a directory (see the module docs).
pub fn manifest(dir: &Path, progress: Progress) -> Result<String> {
    let mut m = String::new();
    for (rel, path) in files_below(dir)? {
        let (hex, size) = hash_file(&path, progress)?;
        m.push_str(&format!("{hex}  {size}  {rel}\n"));
    }
    Ok(m)
}

/// Returns the total bytes a fingerprint of `path` will read.
pub fn total_bytes(path: &Path) -> Result<u64> {
    let meta =
        std::fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        files_below(path)?
            .iter()
            .map(|(_, p)| Ok(std::fs::metadata(p)?.len()))
            .sum()
    } else {
        Ok(meta.len())
    }
}

/// Returns the fingerprint `sha256:<hex>` of a file or directory, and whether it was a
/// directory (`method` `directory`) or a file (`file`).
pub fn fingerprint(path: &Path, progress: Progress) -> Result<(String, &'static str)> {
    let meta =
        std::fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.file_type().is_symlink() {
        bail!(
            "{} is a symbolic link; dataset fingerprints refuse links",
            path.display()
        );
    }
    if meta.is_dir() {
        let m = manifest(path, progress)?;
        Ok((
            format!("sha256:{}", hex::encode(Sha256::digest(m.as_bytes()))),
            "directory",
        ))
    } else {
        let (hex, _) = hash_file(path, progress)?;
        Ok((format!("sha256:{hex}"), "file"))
    }
}

/// `govledger hash-dataset`: each path's fingerprint (`sha256:<hex>  PATH` lines, or JSON
/// `[{"path", "sha256", "method"}]`), with a progress line on a terminal for inputs over 64 MiB.
pub fn report(paths: &[PathBuf], json: bool) -> Result<crate::cli::Outcome> {
    use std::io::IsTerminal;
    let mut lines = Vec::new();
    let mut items = Vec::new();
    for path in paths {
        let total = total_bytes(path)?;
        let show = std::io::stderr().is_terminal() && total > 64 << 20;
        let start = std::time::Instant::now();
        let mut done = 0u64;
        let mut last = std::time::Instant::now();
        let mut progress = |n: u64| {
            done += n;
            if show && last.elapsed().as_millis() >= 250 {
                last = std::time::Instant::now();
                let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-9);
                let eta = (total.saturating_sub(done)) as f64 / rate.max(1.0);
                eprint!(
                    "\r{}: {:.0} / {:.0} MiB  {:.0} MB/s  ETA {:.0} s   ",
                    path.display(),
                    done as f64 / 1048576.0,
                    total as f64 / 1048576.0,
                    rate / 1e6,
                    eta
                );
            }
        };
        let (fp, method) = fingerprint(path, &mut progress)?;
        if show {
            eprintln!();
        }
        lines.push(format!("{fp}  {}", path.display()));
        items.push(
            serde_json::json!({"path": path.display().to_string(), "sha256": fp, "method": method}),
        );
    }
    Ok(crate::cli::Outcome::Valid(if json {
        serde_json::to_string_pretty(&items)?
    } else {
        lines.join("\n")
    }))
}

/// `govledger hash-dataset`.
pub fn command(c: crate::args::HashDatasetCmd) -> Result<crate::cli::Outcome> {
    report(&c.paths, c.json)
}
