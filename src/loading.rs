//! Serving while the engines recover. The listeners are bound first and
//! every connection is answered `-LOADING` (INFO shows the progress, as
//! Redis's does while it loads) until recovery is done; then the same
//! connections go on as ordinary clients. `maxclients` and protected mode
//! apply as they do afterwards. AUTH too is answered LOADING (a
//! connection's state is not carried over), so with a password set INFO
//! is refused (`-NOAUTH`): the progress is shown to no stranger.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::config::Config;
use crate::protocol::{ParseOutcome, Reply, ReplyEncoder, RequestLimits, RequestParser};
use crate::server::{self, Admission, Server, StartError};

const LOADING: &str = "LOADING Strata is loading the dataset in memory";
const NOAUTH: &str = "NOAUTH Authentication required.";

/// How far recovery has got (INFO persistence while loading).
#[derive(Default)]
pub struct LoadingProgress {
    pub started_unix: AtomicU64,
    pub total_bytes: AtomicU64,
    pub loaded_bytes: AtomicU64,
}

impl LoadingProgress {
    /// INFO's loading fields, as Redis prints them while it loads.
    pub fn info(&self) -> String {
        let total = self.total_bytes.load(Ordering::Relaxed);
        let loaded = self.loaded_bytes.load(Ordering::Relaxed).min(total);
        let started = self.started_unix.load(Ordering::Relaxed);
        let elapsed = (strata_engines::now_ms() / 1000).saturating_sub(started);
        let perc = if total == 0 { 0.0 } else { loaded as f64 * 100.0 / total as f64 };
        let eta = ((total - loaded) * elapsed.max(1)).checked_div(loaded).unwrap_or(1);
        format!(
            "# Persistence\r\nloading:1\r\nasync_loading:0\r\nloading_start_time:{started}\r\n\
             loading_total_bytes:{total}\r\nloading_rdb_used_mem:0\r\nloading_loaded_bytes:{loaded}\r\n\
             loading_loaded_perc:{perc:.2}\r\nloading_eta_seconds:{eta}\r\n"
        )
    }
}

/// Binds, recovers in the background while answering LOADING, then serves
/// until shutdown.
pub async fn start(config: Config) -> Result<(), StartError> {
    let listeners = server::bind_all(&config.bind(), config.port()).await?;
    let progress = Arc::new(LoadingProgress::default());
    progress.started_unix.store(strata_engines::now_ms() / 1000, Ordering::Relaxed);
    // The configuration cannot change while loading (CONFIG SET is answered
    // LOADING): what the sessions need is read once.
    let session = config.session();
    let rules = Arc::new(LoadingRules {
        admission: Admission::new(&config),
        query_limit: session.query_limit,
        // Clients that must authenticate are held to small requests already.
        limits: RequestLimits { max_bulk_len: session.max_bulk_len, auth_required: session.password_set },
        password_set: config.requirepass().is_some(),
        sessions: AtomicUsize::new(0),
    });
    let (ready_tx, ready) = watch::channel::<Option<Arc<Server>>>(None);
    let acceptors: Vec<_> = listeners
        .into_iter()
        .map(|listener| tokio::spawn(accept_while_loading(listener, ready.clone(), progress.clone(), rules.clone())))
        .collect();
    let loading = progress.clone();
    let opened =
        tokio::task::spawn_blocking(move || Server::open(config, &loading)).await.expect("recovery thread panicked")?;
    ready_tx.send_replace(Some(opened.clone()));
    let mut listeners = Vec::new();
    for acceptor in acceptors {
        listeners.push(acceptor.await.expect("acceptor panicked"));
    }
    server::run(opened, listeners).await
}

/// What connections made during loading are held to.
struct LoadingRules {
    admission: Admission,
    query_limit: usize,
    limits: RequestLimits,
    /// `requirepass` is set: INFO needs AUTH, which waits for the end of
    /// loading.
    password_set: bool,
    /// Connections open now, for `maxclients`.
    sessions: AtomicUsize,
}

/// One connection counted in `LoadingRules::sessions` until it ends here.
struct Session(Arc<LoadingRules>);

impl Session {
    fn open(rules: &Arc<LoadingRules>) -> Session {
        rules.sessions.fetch_add(1, Ordering::Relaxed);
        Session(rules.clone())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_while_loading(
    listener: TcpListener,
    ready: watch::Receiver<Option<Arc<Server>>>,
    progress: Arc<LoadingProgress>,
    rules: Arc<LoadingRules>,
) -> TcpListener {
    let mut done = ready.clone();
    let mut rejected = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((socket, addr)) = accepted else { continue };
                if let Some(error) = rules.admission.refusal(rules.sessions.load(Ordering::Relaxed), addr) {
                    rejected += 1;
                    tokio::spawn(server::refuse(socket, error));
                    continue;
                }
                let _ = socket.set_nodelay(true);
                let session = Session::open(&rules);
                tokio::spawn(loading_session(socket, addr, ready.clone(), progress.clone(), session));
            }
            _ = done.wait_for(Option::is_some) => {
                if let Some(server) = ready.borrow().as_ref() {
                    server.stats.rejected_connections.fetch_add(rejected, Ordering::Relaxed);
                }
                return listener;
            }
        }
    }
}

/// A connection made during loading: LOADING for every request (INFO gets
/// the progress, or NOAUTH with a password set), then, once the server is
/// ready, an ordinary client with whatever input is still unanswered.
async fn loading_session(
    mut socket: TcpStream,
    addr: SocketAddr,
    mut ready: watch::Receiver<Option<Arc<Server>>>,
    progress: Arc<LoadingProgress>,
    session: Session,
) {
    let rules = &session.0;
    let mut input = BytesMut::with_capacity(4096);
    let mut parser = RequestParser::default();
    loop {
        let mut output = BytesMut::new();
        loop {
            match parser.parse(&mut input, &rules.limits) {
                Ok(ParseOutcome::Request(argv)) if argv.is_empty() => continue,
                Ok(ParseOutcome::Request(argv)) => {
                    let reply = if !argv[0].eq_ignore_ascii_case(b"INFO") {
                        Reply::Error(LOADING.into())
                    } else if rules.password_set {
                        Reply::Error(NOAUTH.into())
                    } else {
                        Reply::Verbatim("txt", bytes::Bytes::from(progress.info()))
                    };
                    ReplyEncoder { resp3: false }.encode(&reply, &mut output);
                }
                Ok(ParseOutcome::Incomplete { .. }) => break,
                Err(e) => {
                    let _ = socket.write_all(format!("-ERR {e}\r\n").as_bytes()).await;
                    return;
                }
            }
        }
        if !output.is_empty() && socket.write_all(&output).await.is_err() {
            return;
        }
        let server = tokio::select! {
            read = socket.read_buf(&mut input) => {
                // Closed, failed, or over `client-query-buffer-limit`.
                if !matches!(read, Ok(n) if n > 0) || input.len() > rules.query_limit {
                    return;
                }
                continue;
            }
            server = ready.wait_for(Option::is_some) => server.ok().and_then(|server| server.clone()),
        };
        let Some(server) = server else { return };
        server.stats.connections_received.fetch_add(1, Ordering::Relaxed);
        server.serve_connection(socket, addr, input);
        return;
    }
}
