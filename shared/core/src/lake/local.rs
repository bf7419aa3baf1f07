//! The lake on a local folder (`file://PATH`): atomic puts by temporary file,
//! fsync and rename, listing that ignores temporary (dot) files.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::store::{ObjectStore, StoreError, StoreLock, check_key};

/// Makes a rename or a new entry in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The lake on a local folder (`file://PATH`).
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> LocalStore {
        LocalStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

#[derive(Debug, Clone, Copy)]
enum Durability {
    Durable,
    AtomicOnly,
}

impl LocalStore {
    /// Writes by temporary file, fsync and rename; `Durable` also fsyncs
    /// the folder, which is what makes the rename itself survive a power cut.
    async fn write(
        &self,
        key: &str,
        bytes: Vec<u8>,
        durability: Durability,
    ) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let dir = path.parent().expect("a checked key has a parent folder");
        tokio::fs::create_dir_all(dir).await.map_err(io_err(key))?;
        let file_name = path
            .file_name()
            .expect("a checked key has a name")
            .to_string_lossy();
        // Hidden temporary name in the same folder: rename is atomic within a
        // file system, and list() skips dot-files, so readers never see a part.
        let tmp = dir.join(format!(
            ".{file_name}.{}-{:016x}.tmp",
            std::process::id(),
            fastrand::u64(..)
        ));
        let key_owned = key.to_string();
        let tmp_for_write = tmp.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp_for_write)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            crate::crash::point("store.put.before_rename");
            std::fs::rename(&tmp_for_write, &path)?;
            // The rename is durable only once the folder's entry is on disk.
            match durability {
                Durability::Durable => {
                    sync_dir(path.parent().expect("a checked key has a parent folder"))
                }
                Durability::AtomicOnly => Ok(()),
            }
        })
        .await
        .map_err(|e| StoreError::Backend {
            key: key_owned,
            message: e.to_string(),
        })?;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io_err(key)(e));
        }
        Ok(())
    }
}

fn io_err(key: &str) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        key: key.to_string(),
        source,
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(key)(e)),
        }
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.write(key, bytes, Durability::Durable).await
    }

    async fn put_advisory(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.write(key, bytes, Durability::AtomicOnly).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(key)(e)),
        }
        let dir = path
            .parent()
            .expect("a checked key has a parent folder")
            .to_path_buf();
        tokio::task::spawn_blocking(move || sync_dir(&dir))
            .await
            .map_err(|e| StoreError::Backend {
                key: key.to_string(),
                message: e.to_string(),
            })?
            .map_err(io_err(key))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            // Walk only the folder the prefix names, not the whole lake.
            let dir_part = match prefix.rfind('/') {
                Some(i) => &prefix[..i],
                None => "",
            };
            let start = root.join(dir_part);
            let mut keys = Vec::new();
            let mut stack = vec![start];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(&prefix)(e)),
                };
                for entry in entries {
                    let entry = entry.map_err(io_err(&prefix))?;
                    let name = entry.file_name();
                    if name.to_string_lossy().starts_with('.') {
                        continue;
                    }
                    let path = entry.path();
                    if entry.file_type().map_err(io_err(&prefix))?.is_dir() {
                        stack.push(path);
                    } else if let Ok(rel) = path.strip_prefix(&root) {
                        let key = rel.to_string_lossy().replace('\\', "/");
                        if key.starts_with(&prefix) {
                            keys.push(key);
                        }
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
        .map_err(|e| StoreError::Backend {
            key: String::new(),
            message: e.to_string(),
        })?
    }

    /// An advisory file lock (`flock`) on `.locks/<name>.lock` under the
    /// root: held across processes on this machine, released by the kernel
    /// when the holder exits, even by SIGKILL.
    async fn lock(&self, name: &str) -> Result<StoreLock, StoreError> {
        check_key(name)?;
        let path = self.root.join(".locks").join(format!("{name}.lock"));
        let key = name.to_string();
        tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            std::fs::create_dir_all(path.parent().expect("a lock file has a folder"))?;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            file.lock()?;
            Ok(file)
        })
        .await
        .map_err(|e| StoreError::Backend {
            key: key.clone(),
            message: e.to_string(),
        })?
        .map(StoreLock::new)
        .map_err(io_err(&key))
    }

    fn uri(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Advisory writes skip only the folder's fsync: they replace objects
    /// whole (concurrent writers and readers never see a mix) and leave no
    /// temporary file behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn advisory_puts_replace_objects_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(LocalStore::new(dir.path()));
        let key = "state/runs/ticker=A.json";
        let versions: Vec<Vec<u8>> = (0..8u8).map(|v| vec![b'a' + v; 64 * 1024]).collect();
        let writers = versions.iter().cloned().map(|bytes| {
            let store = store.clone();
            tokio::spawn(async move { store.put_advisory(key, bytes).await })
        });
        let reader = {
            let store = store.clone();
            let versions = versions.clone();
            tokio::spawn(async move {
                for _ in 0..200 {
                    if let Some(seen) = store.get(key).await.unwrap() {
                        assert!(versions.contains(&seen), "a torn or mixed object");
                    }
                }
            })
        };
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        reader.await.unwrap();
        let last = store.get(key).await.unwrap().unwrap();
        assert!(versions.contains(&last));
        assert_eq!(store.list("state/runs/").await.unwrap(), [key]);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("state/runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }
}
