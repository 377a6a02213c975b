//! Code and processes inside a host: threads that have joined its network namespace, and
//! child processes started in it.

use std::fs;
use std::future::Future;
use std::io;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::thread;

use super::{LabError, LabHost};

impl LabHost {
    /// Starts `program args...` inside the host; it is killed when the handle is dropped.
    pub fn spawn_process(&self, program: &Path, args: &[&str]) -> Result<LabProcess, LabError> {
        let child = self
            .command(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LabError::Io {
                action: format!("start {} in {}", program.display(), self.name),
                source,
            })?;
        Ok(LabProcess { child: Some(child) })
    }

    /// Runs `future` to completion inside the host, on a thread that has joined the host's
    /// network namespace: every socket it opens is the host's.
    pub fn block_on<F>(&self, future: F) -> Result<F::Output, LabError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(future)?.join()
    }

    /// Like [`block_on`](Self::block_on), in the background.
    pub fn spawn<F>(&self, future: F) -> Result<HostTask<F::Output>, LabError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let host = self.clone();
        let name = self.name.clone();
        let thread = thread::Builder::new()
            .name(format!("lab-{name}"))
            .spawn(move || -> Result<F::Output, LabError> {
                host.enter()?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|source| LabError::Io {
                        action: format!("start a runtime in {name}"),
                        source,
                    })?;
                Ok(runtime.block_on(future))
            })
            .map_err(|source| LabError::Io {
                action: "start a host thread".to_owned(),
                source,
            })?;
        Ok(HostTask { thread })
    }

    /// Moves the calling thread into the host's network namespace: every socket it opens
    /// from then on, and every thread it starts, is the host's.
    pub fn enter(&self) -> Result<(), LabError> {
        let namespace =
            fs::File::open(Path::new("/run/netns").join(&self.netns)).map_err(|source| {
                LabError::Io {
                    action: format!("open the namespace of {}", self.name),
                    source,
                }
            })?;
        nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
            LabError::Io {
                action: format!("enter the namespace of {}", self.name),
                source: io::Error::from(e),
            }
        })
    }
}

/// Code running inside a host; see [`LabHost::spawn`].
#[derive(Debug)]
pub struct HostTask<T> {
    thread: thread::JoinHandle<Result<T, LabError>>,
}

impl<T> HostTask<T> {
    /// Waits for it to finish. A panic inside is resumed here, so assertions inside a host
    /// fail the test.
    pub fn join(self) -> Result<T, LabError> {
        match self.thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// A process running inside a host; killed on drop.
#[derive(Debug)]
pub struct LabProcess {
    child: Option<Child>,
}

impl LabProcess {
    /// Adopts a process started with [`LabHost::command`].
    pub fn from_child(child: Child) -> Self {
        Self { child: Some(child) }
    }

    /// The process, to read its pipes or wait for it.
    pub fn child(&mut self) -> &mut Child {
        // Only `kill_and_collect` takes the child, and it consumes `self`.
        self.child
            .as_mut()
            .unwrap_or_else(|| unreachable!("child taken"))
    }

    /// Stops it (SIGKILL) and collects what it printed.
    pub fn kill_and_collect(mut self) -> Result<Output, LabError> {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| unreachable!("child taken"));
        let _ = child.kill();
        child.wait_with_output().map_err(|source| LabError::Io {
            action: "collect the output of a lab process".to_owned(),
            source,
        })
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
