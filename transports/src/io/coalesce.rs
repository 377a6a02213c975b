//! Write coalescing under TLS (and under plain HTTP/2) on the server side, opt-in
//! (`GNT_COALESCE_WRITES=1`): a response's bytes wait until the worker has run the other
//! ready tasks, so that responses finished together leave in one system call, as several
//! TLS records in one send.
//!
//! Why here: h2 flushes after every poll of its connection task, and tokio-rustls sends
//! what it encrypted on every write, so each response (finished by its own task, which
//! wakes the connection task straight from tokio's LIFO slot) became one `writev` and one
//! TLS record on the wire: 1.0 write system call per call under load
//! (`docs/benchmarks.md`).
//!
//! The rule, at each flush with bytes waiting: put them off, at most [`MAX_PUT_OFF`]
//! flushes in a row (so that the peer gets the first responses of a large burst while the
//! rest are computed: holding a whole burst made one connection's callers and server take
//! turns), and ask the scheduler to wake the connection's task once its worker has nothing
//! else to run ([`tokio::task::yield_now`]'s deferral, which tokio also honours every 61
//! task polls under load). Bytes wait for work that is ready, never for the network or a
//! slow handler; the next flush after that wake writes them.
//!
//! Why opt-in: it saves a third of the server's CPU per call with several busy
//! connections, but a lone call pays for the deferred wake (a poll of the I/O driver), and
//! one connection's 16 callers lose throughput to the turns; `docs/benchmarks.md` has the
//! figures and what was tried.
//!
//! Shutdown writes out first. A write too large to be worth a copy (a file's chunks) goes
//! straight to the socket, after what was waiting. The TLS handshake runs without
//! coalescing ([`Coalescing::new`] starts off): its flights must leave as they come.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker, ready};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Writes at least this large (with what waits) go straight out: copying them saves no
/// system call worth the copy.
const DIRECT_WRITE: usize = 16 * 1024;
/// A buffer grown past this by a burst is given back once written out, so an idle
/// connection holds none.
const KEEP_CAPACITY: usize = 64 * 1024;
/// Flushes put off in a row at most.
const MAX_PUT_OFF: usize = 8;

/// A byte stream whose small writes wait while other calls on the connection are in
/// progress.
#[derive(Debug)]
pub(crate) struct Coalescing<S> {
    inner: S,
    /// Bytes accepted and not yet written to `inner`; `sent` of them were.
    waiting: Vec<u8>,
    sent: usize,
    /// Flushes put off since the last write-out.
    put_off: usize,
    enabled: bool,
    /// Wakes the connection's task once its worker has nothing else to run.
    idle: Option<Arc<IdleWake>>,
    /// Whether `idle` waits for the scheduler.
    idle_pending: bool,
}

/// Wakes a task, and says it did.
#[derive(Debug, Default)]
struct IdleWake {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Wake for IdleWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<S> Coalescing<S> {
    /// `inner`, with coalescing off until [`enable`](Self::enable).
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            waiting: Vec::new(),
            sent: 0,
            put_off: 0,
            enabled: false,
            idle: None,
            idle_pending: false,
        }
    }

    /// Holds small writes from now on.
    pub(crate) fn enable(&mut self) {
        self.enabled = true;
    }

    /// Whether the deferred wake came (and forgets it).
    fn idle_fired(&mut self) -> bool {
        let fired = self
            .idle
            .as_ref()
            .is_some_and(|idle| idle.fired.swap(false, Ordering::AcqRel));
        if fired {
            self.idle_pending = false;
        }
        fired
    }

    /// Asks the scheduler to wake this task once its worker has nothing else to run.
    fn wake_when_idle(&mut self, cx: &Context<'_>) {
        if self.idle_pending {
            return;
        }
        let idle = self.idle.get_or_insert_with(Default::default).clone();
        idle.task.register(cx.waker());
        let waker = Waker::from(idle);
        let mut idle_cx = Context::from_waker(&waker);
        // Its first poll hands the waker to the scheduler's deferred list and returns
        // Pending; the waker stays there when the future is dropped.
        let mut yielded = std::pin::pin!(tokio::task::yield_now());
        let _ = yielded.as_mut().poll(&mut idle_cx);
        self.idle_pending = true;
    }
}

impl<S: AsyncWrite + Unpin> Coalescing<S> {
    /// Writes out what waits (vectored, as TLS writes without coalescing: one kind of
    /// system call, which `/proc/<pid>/io` counts, whichever way the bytes go).
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.waiting.len() {
            let rest = [IoSlice::new(&self.waiting[self.sent..])];
            let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.waiting.clear();
        self.sent = 0;
        self.put_off = 0;
        if self.waiting.capacity() > KEEP_CAPACITY {
            self.waiting = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalescing<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalescing<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if !this.enabled || this.waiting.len() - this.sent + len >= DIRECT_WRITE {
            ready!(this.poll_write_out(cx))?;
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        for buf in bufs {
            this.waiting.extend_from_slice(buf);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        // Slices are gathered into the buffer, or passed on as they are.
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let idle_fired = this.idle_fired();
        if this.sent < this.waiting.len() && !idle_fired && this.put_off < MAX_PUT_OFF {
            this.put_off += 1;
            this.wake_when_idle(cx);
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A sink that records each write it is given, as the socket's system calls.
    #[derive(Default)]
    struct Calls {
        writes: Vec<Vec<u8>>,
        flushes: usize,
        shut: bool,
    }

    impl AsyncWrite for Calls {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().writes.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().shut = true;
            Poll::Ready(Ok(()))
        }
    }

    /// Counts the wakes of the connection's task.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn write(io: &mut Coalescing<Calls>, cx: &mut Context<'_>, bytes: &[u8]) {
        let written = Pin::new(io).poll_write(cx, bytes);
        assert!(matches!(written, Poll::Ready(Ok(n)) if n == bytes.len()));
    }

    fn flush(io: &mut Coalescing<Calls>, cx: &mut Context<'_>) {
        assert!(matches!(Pin::new(io).poll_flush(cx), Poll::Ready(Ok(()))));
    }

    /// Coalescing on.
    fn coalescing() -> Coalescing<Calls> {
        let mut io = Coalescing::new(Calls::default());
        io.enable();
        io
    }

    /// Runs `body` inside one poll of a current-thread runtime's task, as the connection's
    /// task runs: the scheduler's deferred wakes come only once it returns.
    fn on_runtime<T>(body: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .map(|runtime| runtime.block_on(body))
            .unwrap()
    }

    #[test]
    fn responses_of_one_run_of_the_worker_leave_in_one_write_after_it() {
        on_runtime(async {
            let wakes = Arc::new(Wakes::default());
            let waker = wakes.clone().into();
            let mut cx = Context::from_waker(&waker);
            let mut io = coalescing();
            for response in [&b"first"[..], b", second", b", third"] {
                write(&mut io, &mut cx, response);
                flush(&mut io, &mut cx);
            }
            assert!(io.inner.writes.is_empty());
            // The worker has nothing else to run: the task is woken once, and its next
            // flush writes everything.
            tokio::task::yield_now().await;
            assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
            flush(&mut io, &mut cx);
            assert_eq!(io.inner.writes, [b"first, second, third".to_vec()]);
            assert_eq!(io.inner.flushes, 1);
        });
    }

    #[test]
    fn a_long_burst_leaves_in_parts_and_the_deferred_wake_writes_what_waits() {
        on_runtime(async {
            let wakes = Arc::new(Wakes::default());
            let waker = wakes.clone().into();
            let mut cx = Context::from_waker(&waker);
            let mut io = coalescing();
            // A burst longer than MAX_PUT_OFF: the flush after that many writes.
            for _ in 0..=MAX_PUT_OFF {
                write(&mut io, &mut cx, b"x");
                flush(&mut io, &mut cx);
            }
            assert_eq!(io.inner.writes, [vec![b'x'; MAX_PUT_OFF + 1]]);
            write(&mut io, &mut cx, b"y");
            flush(&mut io, &mut cx);
            assert_eq!(io.inner.writes.len(), 1);
            // Once the worker has nothing else to run, the task is woken, and its next
            // flush writes what waits.
            tokio::task::yield_now().await;
            assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
            flush(&mut io, &mut cx);
            assert_eq!(io.inner.writes.last().map(Vec::as_slice), Some(&b"y"[..]));
        });
    }

    #[test]
    fn large_writes_go_straight_out_after_what_waits_and_shutdown_writes_everything() {
        let wakes = Arc::new(Wakes::default());
        let waker = wakes.into();
        let mut cx = Context::from_waker(&waker);
        let mut io = coalescing();

        write(&mut io, &mut cx, b"small");
        let chunk = vec![7u8; DIRECT_WRITE];
        write(&mut io, &mut cx, &chunk);
        assert_eq!(io.inner.writes, [b"small".to_vec(), chunk]);

        write(&mut io, &mut cx, b"last");
        assert!(matches!(
            Pin::new(&mut io).poll_shutdown(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(
            io.inner.writes.last().map(Vec::as_slice),
            Some(&b"last"[..])
        );
        assert!(io.inner.shut);
    }

    #[test]
    fn before_it_is_enabled_every_write_goes_straight_out() {
        let wakes = Arc::new(Wakes::default());
        let waker = wakes.clone().into();
        let mut cx = Context::from_waker(&waker);
        let mut io = Coalescing::new(Calls::default());
        write(&mut io, &mut cx, b"client hello");
        assert_eq!(io.inner.writes, [b"client hello".to_vec()]);
        flush(&mut io, &mut cx);
        assert_eq!(io.inner.flushes, 1);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
    }
}
