//! Files into and out of a job's workspace volume through the Docker archive API (SPEC §11):
//! `HEAD`/`GET /containers/{id}/archive` for [`Engine::export`], `PUT` for
//! [`Engine::import`], on the job's container (created, or exited and not yet removed), whose
//! `/workspace` is the run's volume.
//!
//! Docker resolves every component of the path it is given but the last, following symlinks
//! (inside the container's filesystem, not the host's). So an export stats each component
//! from the top down first and stops at the first symlink: what it then asks for has no link
//! above it. Nothing runs in the job's container by then; another job of the run could swap a
//! directory for a link in between, and Docker would then follow it within the container's
//! own filesystem, which that job can read anyway. A link that loops cannot be stat'ed (the
//! daemon resolves it to say where it leads, and gives up): its export is `None`.
//!
//! [`Engine::export`]: crate::Engine::export
//! [`Engine::import`]: crate::Engine::import

use super::DockerEngine;
use crate::collect::components;
use crate::container::status_of;
use crate::{EngineError, Prepared, TarStream};
use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, DownloadFromContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures::{StreamExt, TryStreamExt};

/// Go's `os.ModeDir`, as the archive stat reports modes.
const MODE_DIR: u32 = 1 << 31;
/// Go's `os.ModeSymlink`.
const MODE_SYMLINK: u32 = 1 << 27;

impl DockerEngine {
    pub(super) async fn export_path(
        &self,
        prepared: &Prepared,
        rel: &str,
    ) -> Result<Option<TarStream>, EngineError> {
        let parts = components(rel)?;
        let mut path = String::from("/workspace");
        for (i, part) in parts.iter().enumerate() {
            path.push('/');
            path.push_str(part);
            let options = ContainerArchiveInfoOptionsBuilder::default()
                .path(&path)
                .build();
            let stat = match self
                .docker
                .get_container_archive_info(&prepared.handle, Some(options))
                .await
            {
                Ok(stat) => stat,
                Err(e) if status_of(&e) == Some(404) => return self.absent(prepared).await,
                // A HEAD answer has no body: ask again for the daemon's words.
                Err(e) if status_of(&e) == Some(500) => {
                    return match self.why(prepared, &path).await {
                        // A link that loops: Docker cannot stat it, nor archive it as a link.
                        Some(m) if m.contains("too many links") => Ok(None),
                        Some(m) => Err(EngineError::Engine(format!("stat of {path}: {m}"))),
                        None => Err(EngineError::Engine(format!("stat of {path}: {e}"))),
                    };
                }
                Err(e) => return Err(EngineError::Engine(format!("stat of {path}: {e}"))),
            };
            let above = i + 1 < parts.len();
            if above && (stat.file_mode & MODE_SYMLINK != 0 || stat.file_mode & MODE_DIR == 0) {
                return Ok(None);
            }
        }
        if parts.is_empty() {
            // The workspace's contents, named relative to it.
            path.push_str("/.");
        }
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(&path)
            .build();
        let what = format!("exporting /workspace/{rel}");
        let stream = self
            .docker
            .download_from_container(&prepared.handle, Some(options))
            .map_err(move |e| EngineError::Engine(format!("{what}: {e}")))
            .boxed();
        Ok(Some(stream))
    }

    /// `None`, for a path that is not there; an error when the container is not (a 404
    /// says either, without a body to tell which), so an export after
    /// [`crate::Engine::collect`] fails instead of finding nothing.
    async fn absent(&self, prepared: &Prepared) -> Result<Option<TarStream>, EngineError> {
        match self.docker.inspect_container(&prepared.handle, None).await {
            Ok(_) => Ok(None),
            Err(e) if status_of(&e) == Some(404) => Err(EngineError::Engine(format!(
                "the job's container {} is gone: nothing to export from",
                prepared.handle
            ))),
            Err(e) => Err(EngineError::Engine(e.to_string())),
        }
    }

    /// What the daemon says when asked for the archive of `path`, when it refuses.
    async fn why(&self, prepared: &Prepared, path: &str) -> Option<String> {
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let mut answer = self
            .docker
            .download_from_container(&prepared.handle, Some(options));
        match answer.next().await {
            Some(Err(bollard::errors::Error::DockerResponseServerError { message, .. })) => {
                Some(message)
            }
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        }
    }

    pub(super) async fn import_tar(
        &self,
        prepared: &Prepared,
        tar: TarStream,
    ) -> Result<(), EngineError> {
        let options = UploadToContainerOptionsBuilder::default()
            .path("/workspace")
            .build();
        let body = bollard::body_try_stream(tar.map_err(std::io::Error::other));
        self.docker
            .upload_to_container(&prepared.handle, Some(options), body)
            .await
            .map_err(|e| EngineError::Engine(format!("extracting into the workspace: {e}")))
    }
}
