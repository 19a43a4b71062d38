//! A thread-per-connection accept loop shared by the test servers.

use std::collections::HashMap;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// Accepts on `127.0.0.1:0` and runs a handler per connection on its own thread.
///
/// Drop stops accepting and shuts down every connection still open, which ends the handlers'
/// blocking reads.
pub(super) struct Listener {
    pub(super) port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    open: Arc<Mutex<HashMap<usize, TcpStream>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Listener {
    /// Binds `127.0.0.1:0` and starts accepting; `handler` gets each accepted stream.
    pub(super) fn spawn<F>(handler: F) -> Listener
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        Listener::serve(listener, handler)
    }

    /// Accepts on `listener` (which must accept connections to `127.0.0.1`, for the wake-up
    /// on drop); `handler` gets each accepted stream.
    pub(super) fn serve<F>(listener: TcpListener, handler: F) -> Listener
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        let port = listener.local_addr().expect("local_addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let open: Arc<Mutex<HashMap<usize, TcpStream>>> = Arc::default();
        let handler = Arc::new(handler);
        let thread = {
            let (stop, accepted, open) = (stop.clone(), accepted.clone(), open.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let id = accepted.fetch_add(1, Ordering::SeqCst);
                    if let Ok(clone) = stream.try_clone() {
                        open.lock().expect("open map").insert(id, clone);
                    }
                    let (handler, open) = (handler.clone(), open.clone());
                    thread::spawn(move || {
                        handler(stream);
                        open.lock().expect("open map").remove(&id);
                    });
                }
            })
        };
        Listener {
            port,
            stop,
            accepted,
            open,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far.
    pub(super) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the loop sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Ok(open) = self.open.lock() {
            for stream in open.values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}
