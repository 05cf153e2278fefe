//! The cache of precompiled code, per user and checked before use.
//!
//! wasmtime runs precompiled code as it finds it (deserializing is `unsafe`): a cache file that
//! another user could write, or one cut short, would run as native code in this process. So:
//!
//! - the cache lives in the user's own cache directory: `CALLRECORDS_CACHE_DIR`, else
//!   `$XDG_CACHE_HOME/callrecords`, else `$HOME/.cache/callrecords` (made `0700`). On Unix a
//!   directory or file owned by another user, or writable by group or others, is not used;
//! - each file is the SHA-256 of the code, then the code; the whole file is read into memory and
//!   checked before wasmtime sees it, so it cannot change between the check and the use;
//! - the name is the SHA-256 of the component and the engine's settings, so a new build or other
//!   settings never load old code. Only the newest [`KEEP`] entries of each component are kept.
//!
//! Any problem (no directory, a bad digest, a foreign owner) means compiling, never an error.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Names the cache directory, overriding the per-user default.
pub const CACHE_DIR_VAR: &str = "CALLRECORDS_CACHE_DIR";
/// Entries kept per component; older builds' code is removed when a new one is written.
pub const KEEP: usize = 4;
const DIGEST_LEN: usize = 32;

/// `bytes` compiled for `engine`, from the cache when a checked entry is there, else compiled
/// and stored. `None` only when compiling fails (the caller reports that error itself).
pub(crate) fn load(engine: &Engine, bytes: &[u8], name: &str) -> Option<Component> {
    match dir() {
        Some(dir) => load_in(&dir, engine, bytes, name),
        None => Component::new(engine, bytes).ok(),
    }
}

/// [`load`] with the cache in `dir` (a directory [`usable`] accepted).
pub fn load_in(dir: &Path, engine: &Engine, bytes: &[u8], name: &str) -> Option<Component> {
    let mut key = Sha256Hasher(Sha256::new());
    key.0.update(bytes);
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut key);
    let key = key.0.finalize();
    let path = dir.join(format!("{name}-{}.cwasm", hex(&key[..16])));
    if let Some(code) = read_checked(&path) {
        // SAFETY: this engine's own output for exactly these bytes and settings: the file's
        // digest matched the code read into memory, in a directory only this user can write.
        if let Ok(c) = unsafe { Component::deserialize(engine, &code) } {
            return Some(c);
        }
    }
    let compiled = engine.precompile_component(bytes).ok()?;
    store(dir, &path, name, &compiled);
    // SAFETY: produced just now by this engine.
    unsafe { Component::deserialize(engine, &compiled) }.ok()
}

/// The cache directory (see the module's docs), when [`usable`].
pub fn dir() -> Option<PathBuf> {
    usable(match std::env::var_os(CACHE_DIR_VAR).filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| Path::new(d).is_absolute())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| Path::new(&h).join(".cache")))?
            .join("callrecords"),
    })
}

/// `dir`, made if missing (`0700`), if this user alone can write it.
pub fn usable(dir: PathBuf) -> Option<PathBuf> {
    if !dir.is_dir() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).ok()?;
    }
    private(&std::fs::metadata(&dir).ok()?).then_some(dir)
}

/// Owned by this user and writable by no one else (Unix); elsewhere the per-user location is
/// the whole protection.
fn private(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        meta.uid() == me && meta.mode() & 0o022 == 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        true
    }
}

/// The code of a cache file whose digest matches it, read into memory.
fn read_checked(path: &Path) -> Option<Vec<u8>> {
    let mut file = std::fs::File::open(path).ok()?;
    if !private(&file.metadata().ok()?) {
        return None;
    }
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut data).ok()?;
    if data.len() <= DIGEST_LEN {
        return None;
    }
    let code = data.split_off(DIGEST_LEN);
    (Sha256::digest(&code).as_slice() == data.as_slice()).then_some(code)
}

/// Write `code` to `path` (through a temporary file, so a reader never sees half of it), then
/// remove all but the newest [`KEEP`] entries of `name`.
fn store(dir: &Path, path: &Path, name: &str, code: &[u8]) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut data = Sha256::digest(code).to_vec();
    data.extend_from_slice(code);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut f| std::io::Write::write_all(&mut f, &data));
    if written.is_err() || std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut mine: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&format!("{name}-")) && n.ends_with(".cwasm")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    mine.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, old) in mine.into_iter().skip(KEEP).filter(|(_, p)| p != path) {
        let _ = std::fs::remove_file(old);
    }
}

/// Feeds what a `Hash` implementation writes into a SHA-256 (the engine's settings come as `Hash`).
struct Sha256Hasher(Sha256);

impl std::hash::Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    /// Unused: only the SHA-256 is read.
    fn finish(&self) -> u64 {
        0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
