//! Where uploaded originals live: a directory of files named by unguessable ids, written
//! through a partial file that disappears unless the upload completes.

pub mod form;
pub mod sniff;
pub mod token;

use crate::error::{GatewayError, GatewayResult};
use rand::RngCore;
use std::io;
use std::path::{Path, PathBuf};
use tokio::fs;
use tokio::io::AsyncWriteExt;

pub use token::SourceSigner;

const PARTIAL_DIR: &str = ".partial";

/// 128 random bits, 32 hex characters.
pub fn new_image_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Ids are exactly what `new_image_id` makes, so a path can never escape the directory.
pub fn is_image_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[derive(Clone, Debug)]
pub struct ImageStore {
    dir: PathBuf,
}

impl ImageStore {
    /// Creates the directory (and its partial-upload area) if needed and clears stale partials.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<ImageStore> {
        let dir = dir.into();
        let partial = dir.join(PARTIAL_DIR);
        std::fs::create_dir_all(&partial)?;
        for entry in std::fs::read_dir(&partial)? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(ImageStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The stored original of `id`, if `id` is well-formed.
    pub fn path(&self, id: &str) -> Option<PathBuf> {
        is_image_id(id).then(|| self.dir.join(id))
    }

    /// Start writing a new original.
    pub async fn create(&self, id: &str) -> io::Result<PartialImage> {
        let path = self.dir.join(PARTIAL_DIR).join(id);
        let file = fs::File::create(&path).await?;
        Ok(PartialImage {
            file: Some(file),
            partial: path,
            target: self.dir.join(id),
            written: 0,
            committed: false,
        })
    }

    pub async fn read(&self, id: &str) -> io::Result<Vec<u8>> {
        match self.path(id) {
            Some(path) => fs::read(path).await,
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "malformed image id",
            )),
        }
    }

    pub async fn delete(&self, id: &str) -> io::Result<()> {
        match self.path(id) {
            Some(path) => fs::remove_file(path).await,
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "malformed image id",
            )),
        }
    }
}

/// An original being written. Dropped without `commit`, its partial file is removed.
pub struct PartialImage {
    file: Option<fs::File>,
    partial: PathBuf,
    target: PathBuf,
    written: u64,
    committed: bool,
}

/// A failed write to `storage.dir`: 507 when the disk (or its quota) is full, else 500. The
/// partial file is removed by `PartialImage`'s drop either way.
pub fn write_error(e: io::Error) -> GatewayError {
    log::error!(
        "{}",
        serde_json::json!({"event": "storage_error", "error": e.to_string()})
    );
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            GatewayError::InsufficientStorage(
                "the gateway's image storage is full; nothing was stored".into(),
            )
        }
        _ => GatewayError::Internal("the upload could not be stored".into()),
    }
}

impl form::Sink for PartialImage {
    async fn write(&mut self, chunk: &[u8]) -> GatewayResult<()> {
        PartialImage::write(self, chunk).await.map_err(write_error)
    }

    fn written(&self) -> u64 {
        self.written
    }
}

impl PartialImage {
    pub async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        if let Some(file) = self.file.as_mut() {
            file.write_all(chunk).await?;
            self.written += chunk.len() as u64;
        }
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flush, and move into place under its id.
    pub async fn commit(mut self) -> io::Result<u64> {
        if let Some(mut file) = self.file.take() {
            file.flush().await?;
            file.sync_data().await?;
        }
        fs::rename(&self.partial, &self.target).await?;
        self.committed = true;
        Ok(self.written)
    }
}

impl Drop for PartialImage {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commit_moves_into_place_and_drop_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let id = new_image_id();
        let mut image = store.create(&id).await.unwrap();
        image.write(b"abc").await.unwrap();
        assert_eq!(image.commit().await.unwrap(), 3);
        assert_eq!(store.read(&id).await.unwrap(), b"abc");

        let other = new_image_id();
        let mut partial = store.create(&other).await.unwrap();
        partial.write(b"xyz").await.unwrap();
        drop(partial);
        assert!(store.read(&other).await.is_err());
        assert_eq!(
            std::fs::read_dir(dir.path().join(PARTIAL_DIR))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn ids_are_unguessable_and_checked() {
        let id = new_image_id();
        assert!(is_image_id(&id));
        assert_ne!(id, new_image_id());
        for bad in ["../etc/passwd", "ABCDEF", "", &"g".repeat(32)] {
            assert!(!is_image_id(bad), "{bad}");
        }
    }
}
