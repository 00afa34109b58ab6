//! The SQL Server backend against a TDS fake on loopback (`mssql-mock-tds`): login with and
//! without TLS, the schema statements, a result read back, a server error surfacing
//! clearly, a timeout dropping the connection and a later reconnect, the connection pool
//! (reuse, sharing, its size limit, no reuse after an error), and query rows streamed
//! into records. What a fake cannot show: real T-SQL semantics (the fake answers unknown
//! statements with an empty result and canned rows whatever the WHERE clause), bulk load,
//! rowversion ordering — those need LOGRELAY_TEST_MSSQL (store_conformance.rs).

use logrelay::message::{Facility, Level};
use logrelay::store::mssql::{COMMITTED_SQL, CURSOR_SQL, schema};
use logrelay::store::{self, Query, StoreUrl};
use mssql_mock_tds::query_response::QueryRegistry;
use mssql_mock_tds::{
    ColumnDefinition, ColumnValue, ConnectionStore, MockTdsServer, QueryResponse, Row, SqlDataType,
    TerminalError,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Mock {
    addr: SocketAddr,
    registry: Arc<tokio::sync::Mutex<QueryRegistry>>,
    connections: Arc<tokio::sync::Mutex<ConnectionStore>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Mock {
    fn start(tls: bool) -> Mock {
        Mock::start_with(tls, None)
    }

    /// A server that answers every login by routing the client to `to`.
    fn redirecting_to(to: SocketAddr) -> Mock {
        Mock::start_with(false, Some(to))
    }

    fn start_with(tls: bool, redirect: Option<SocketAddr>) -> Mock {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = if let Some(to) = redirect {
                    MockTdsServer::new_with_redirection(
                        "127.0.0.1:0",
                        to.ip().to_string(),
                        to.port(),
                    )
                    .await
                    .unwrap()
                } else if tls {
                    let (cert, key) = self_signed_pem();
                    let identity = mssql_mock_tds::create_test_identity(&cert, &key).unwrap();
                    MockTdsServer::new_with_strict_tls("127.0.0.1:0", identity)
                        .await
                        .unwrap()
                } else {
                    MockTdsServer::new("127.0.0.1:0").await.unwrap()
                };
                let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
                tx.send((
                    server.local_addr(),
                    server.query_registry(),
                    server.connection_store(),
                    stop_tx,
                ))
                .unwrap();
                let _ = server.run_with_shutdown(stop_rx).await;
            });
        });
        let (addr, registry, connections, stop) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("mock started");
        Mock {
            addr,
            registry,
            connections,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn register(&self, sql: &str, response: QueryResponse) {
        self.registry.blocking_lock().register(sql, response);
    }

    /// Connections the server has accepted a login on.
    fn logins(&self) -> usize {
        self.connections.blocking_lock().count()
    }

    fn url(&self, options: &str) -> StoreUrl {
        StoreUrl::parse(&format!("mssql://sa:pw@{}/LoggingDB?{options}", self.addr)).unwrap()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A self-signed certificate and key made with the openssl command, as PEM.
fn self_signed_pem() -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(ok.success());
    (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap())
}

fn cursor(v: i64) -> QueryResponse {
    QueryResponse::new(
        vec![ColumnDefinition::new("rv", SqlDataType::BigInt)],
        vec![Row::new(vec![ColumnValue::BigInt(v)])],
    )
}

#[test]
fn login_schema_statements_and_a_result() {
    let mock = Mock::start(false);
    mock.register(CURSOR_SQL, cursor(42));
    let mut s = store::open_reader(&mock.url("encrypt=off&connectTimeout=5")).unwrap();
    assert_eq!(s.last_id().unwrap(), Some(42));
    assert!(s.changed().unwrap(), "first look is a change");
    assert!(!s.changed().unwrap(), "same cursor, no change");
}

#[test]
fn tls_login_with_a_trusted_and_an_untrusted_certificate() {
    let mock = Mock::start(true);
    mock.register(CURSOR_SQL, cursor(7));
    let mut s = store::open_reader(
        &mock.url("encrypt=strict&trustServerCertificate=true&connectTimeout=5"),
    )
    .expect("TLS login with trustServerCertificate");
    assert_eq!(s.last_id().unwrap(), Some(7));
    let err = store::open_reader(&mock.url("encrypt=strict&connectTimeout=5"))
        .err()
        .expect("self-signed certificate must be refused");
    assert!(err.to_string().contains("login to"), "{err}");
}

#[test]
fn a_server_error_surfaces_as_a_clear_error() {
    let mock = Mock::start(false);
    mock.register(
        CURSOR_SQL,
        QueryResponse::error_only(TerminalError::new(50000, 16, "the table is on fire")),
    );
    let err = store::open_reader(&mock.url("encrypt=off&connectTimeout=5"))
        .err()
        .expect("error");
    let text = err.to_string();
    assert!(
        text.contains("SQL Server cursor") && text.contains("the table is on fire"),
        "{text}"
    );
}

#[test]
fn a_timeout_drops_the_connection_and_a_later_call_reconnects() {
    let mock = Mock::start(false);
    mock.register(CURSOR_SQL, cursor(5));
    // The first schema statement hangs longer than the connect timeout.
    mock.register(
        &schema::check_sql(),
        schema_state(150, None, &[]).with_delay(Duration::from_secs(20)),
    );
    let mut s = store::open_writer(&mock.url("encrypt=off&connectTimeout=1")).unwrap();
    let start = Instant::now();
    let err = s.last_id().unwrap_err().to_string();
    assert!(err.contains("within 1s"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "retries are bounded: {:?}",
        start.elapsed()
    );
    mock.register(&schema::check_sql(), schema_state(150, Some(0), &[]));
    assert_eq!(s.last_id().unwrap(), Some(5), "the same store reconnects");
}

/// The schema check's answer: compatibility level, rows in dbo.Logs (None: no table)
/// and which steps are pending.
fn schema_state(level: u8, rows: Option<i64>, pending: &[usize]) -> QueryResponse {
    use SqlDataType as T;
    let steps = schema::steps().len();
    let mut columns = vec![
        ColumnDefinition::new("level", T::TinyInt),
        ColumnDefinition::new("rows", T::BigInt),
    ];
    let mut values = vec![
        ColumnValue::TinyInt(level),
        ColumnValue::BigInt(rows.unwrap_or(0)),
    ];
    for i in 0..steps {
        columns.push(ColumnDefinition::new(format!("s{i}"), T::Int));
        values.push(ColumnValue::Int(i32::from(pending.contains(&i))));
    }
    QueryResponse::new(columns, vec![Row::new(values)])
}

fn lock_code(code: i32) -> QueryResponse {
    QueryResponse::new(
        vec![ColumnDefinition::new("r", SqlDataType::Int)],
        vec![Row::new(vec![ColumnValue::Int(code)])],
    )
}

/// A populated table that needs steps: the relay refuses to run them inside its connect
/// timeout and names `logrelayd migrate`; migrate runs each pending step, one
/// transaction each, under the lock, and reports the compatibility level.
#[test]
fn a_populated_table_is_left_to_migrate_which_runs_each_step() {
    let mock = Mock::start(false);
    mock.register(CURSOR_SQL, cursor(5));
    // Step 10 adds `rv`, 11 the persisted `time_us`.
    mock.register(
        &schema::check_sql(),
        schema_state(120, Some(5_000_000), &[10, 11]),
    );
    let url = mock.url("encrypt=off&connectTimeout=5");
    let mut w = store::open_writer(&url).unwrap();
    let err = w.last_id().unwrap_err().to_string();
    assert!(
        err.contains("5000000 rows")
            && err.contains("logrelayd migrate")
            && err.contains("ADD rv rowversion"),
        "{err}"
    );
    mock.register(
        &schema::lock_sql(schema::MIGRATE_LOCK_TIMEOUT),
        lock_code(0),
    );
    let mut lines = Vec::new();
    store::migrate(&url, &mut |l| lines.push(l.to_string())).unwrap();
    let text = lines.join("\n");
    assert!(
        text.contains("step 1/2: ALTER TABLE dbo.Logs ADD rv rowversion"),
        "{text}"
    );
    assert!(
        text.contains("step 2/2: ALTER TABLE dbo.Logs ADD time_us AS"),
        "{text}"
    );
    assert!(text.contains("step 2/2 done in"), "{text}");
    assert!(text.contains("compatibility level is 120"), "{text}");
}

/// An empty table is set up by the relay itself; a lock it cannot get fails the
/// connection clearly instead of running the DDL unlocked.
#[test]
fn the_schema_lock_is_checked() {
    let mock = Mock::start(false);
    mock.register(CURSOR_SQL, cursor(5));
    mock.register(&schema::check_sql(), schema_state(150, Some(0), &[11]));
    let url = mock.url("encrypt=off&connectTimeout=4");
    mock.register(&schema::lock_sql(Duration::from_secs(2)), lock_code(-1));
    let mut w = store::open_writer(&url).unwrap();
    let err = w.last_id().unwrap_err().to_string();
    assert!(
        err.contains("could not take the schema lock") && err.contains("longer than 2s"),
        "{err}"
    );
    mock.register(&schema::lock_sql(Duration::from_secs(2)), lock_code(1));
    assert_eq!(
        w.last_id().unwrap(),
        Some(5),
        "granted after a wait: set up"
    );
    mock.register(
        &schema::lock_sql(schema::MIGRATE_LOCK_TIMEOUT),
        lock_code(-3),
    );
    let err = store::migrate(&url, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("deadlock victim"), "{err}");
}

/// Azure SQL's gateway answers a login with a routing token naming the database's
/// node: the store logs in there instead of failing.
#[test]
fn a_login_routed_elsewhere_is_followed() {
    let target = Mock::start(false);
    target.register(CURSOR_SQL, cursor(77));
    let gateway = Mock::redirecting_to(target.addr);
    let mut s = store::open_reader(&gateway.url("encrypt=off&connectTimeout=5"))
        .expect("the routed login succeeds");
    assert_eq!(
        s.last_id().unwrap(),
        Some(77),
        "statements go to the routed server"
    );
    assert_eq!(target.logins(), 1);
}

#[test]
fn stores_of_one_process_share_pooled_connections() {
    let mock = Mock::start(false);
    mock.register(CURSOR_SQL, cursor(9));
    let url = mock.url("encrypt=off&connectTimeout=5");
    let mut a = store::open_reader(&url).unwrap();
    let mut b = store::open_reader(&url).unwrap();
    for _ in 0..5 {
        assert_eq!(a.last_id().unwrap(), Some(9));
        assert_eq!(b.last_id().unwrap(), Some(9));
    }
    assert_eq!(mock.logins(), 1, "ten statements, one login");
}

#[test]
fn a_connection_that_failed_is_not_lent_again() {
    let mock = Mock::start(false);
    mock.register(CURSOR_SQL, cursor(1));
    let mut s = store::open_reader(&mock.url("encrypt=off&connectTimeout=5")).unwrap();
    mock.register(
        CURSOR_SQL,
        QueryResponse::error_only(TerminalError::new(50000, 16, "not now")),
    );
    assert!(s.last_id().is_err());
    mock.register(CURSOR_SQL, cursor(3));
    assert_eq!(s.last_id().unwrap(), Some(3));
    assert_eq!(s.last_id().unwrap(), Some(3));
    assert_eq!(
        mock.logins(),
        2,
        "a new connection after the error, then reused"
    );
}

#[test]
fn the_pool_never_opens_more_than_its_size() {
    let mock = Mock::start(false);
    mock.register(CURSOR_SQL, cursor(4).with_delay(Duration::from_millis(300)));
    let url = mock.url("encrypt=off&connectTimeout=10&maxPoolSize=2");
    let started = Instant::now();
    let threads: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut s = store::open_reader(&url).unwrap();
                s.last_id().unwrap()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), Some(4));
    }
    assert_eq!(mock.logins(), 2, "five users took turns on two connections");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "five 300 ms statements on two connections take three rounds: {:?}",
        started.elapsed()
    );
}

/// Result rows shaped like the store's SELECT (types as in fixtures/mssql-schema.sql;
/// `id` as `int`, as an original table may have it). The fake finds a parameterised
/// statement by an upper-case piece of its text; the SELECT's DATEDIFF_BIG call is one.
fn log_rows() -> QueryResponse {
    use SqlDataType as T;
    let columns = [
        ("id", T::Int),
        ("time_us", T::BigInt),
        ("received", T::BigInt),
        ("severity", T::TinyInt),
        ("facility", T::TinyInt),
        ("hostname", T::NVarChar),
        ("source", T::NVarChar),
        // (max) here only because the fake can send NULL for no other text type.
        ("procid", T::NVarCharMax),
        ("msgid", T::NVarCharMax),
        ("structured_data", T::NVarCharMax),
        ("message", T::NVarCharMax),
        ("protocol", T::NVarChar),
        ("peer", T::NVarChar),
    ];
    let utf16 = |s: &str| ColumnValue::NVarCharMax(vec![s.encode_utf16().collect()]);
    let text = |s: &str| ColumnValue::NVarChar(s.to_string());
    let row = |id: i32, severity: u8, message: &str| {
        Row::new(vec![
            ColumnValue::Int(id),
            ColumnValue::BigInt(1_790_000_000_000_000 + i64::from(id)),
            ColumnValue::BigInt(1_790_000_000_000_500 + i64::from(id)),
            ColumnValue::TinyInt(severity),
            ColumnValue::TinyInt(16),
            text("web-1"),
            text("nginx"),
            ColumnValue::NVarCharMaxNull,
            ColumnValue::NVarCharMaxNull,
            utf16(r#"{"origin":{"ip":"10.0.0.1"}}"#),
            utf16(message),
            text("rfc5424"),
            text("127.0.0.1:5000"),
        ])
    };
    QueryResponse::new(
        columns
            .iter()
            .map(|(name, t)| ColumnDefinition::new(*name, *t))
            .collect(),
        vec![
            row(1, 3, "disk full"),
            row(2, 6, "naïve café ✓"),
            row(3, 4, "third"),
        ],
    )
}

#[test]
fn query_rows_stream_in_and_an_early_stop_closes_the_connection() {
    let mock = Mock::start(false);
    mock.register(CURSOR_SQL, cursor(3));
    mock.register("DATEDIFF_BIG(MICROSECOND, CONVERT(", log_rows());
    let mut s = store::open_reader(&mock.url("encrypt=off&connectTimeout=5")).unwrap();
    let mut seen = Vec::new();
    s.query(&Query::default(), &mut |id, r| {
        seen.push((
            id,
            r.time_us,
            r.level,
            r.facility,
            r.source.map(str::to_string),
            r.message.to_string(),
            r.structured_data.map(str::to_string),
            r.procid.map(str::to_string),
        ));
        true
    })
    .unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        seen[1],
        (
            2,
            1_790_000_000_000_002,
            Level::Info,
            Facility::from_code(16),
            Some("nginx".to_string()),
            "naïve café ✓".to_string(),
            Some(r#"{"origin":{"ip":"10.0.0.1"}}"#.to_string()),
            None
        )
    );
    assert_eq!(
        mock.logins(),
        1,
        "a result read to its end leaves the connection reusable"
    );

    let mut first = None;
    s.query(&Query::default(), &mut |id, _| {
        first = Some(id);
        false
    })
    .unwrap();
    assert_eq!(first, Some(1));
    assert_eq!(s.last_id().unwrap(), Some(3));
    assert_eq!(
        mock.logins(),
        2,
        "the connection with unread rows was closed and a new one made"
    );
}

#[test]
fn the_command_timeout_bounds_waits_for_the_server_not_the_reader() {
    let mock = Mock::start(false);
    mock.register(CURSOR_SQL, cursor(3));
    mock.register("DATEDIFF_BIG(MICROSECOND, CONVERT(", log_rows());
    let url = mock.url("encrypt=off&connectTimeout=5&commandTimeout=1");
    let mut s = store::open_reader(&url).unwrap();
    // Three rows taken over ~2 s at the reader's pace, longer than the command timeout:
    // the timer runs only while waiting for the server.
    let mut n = 0;
    s.query(&Query::default(), &mut |_, _| {
        std::thread::sleep(Duration::from_millis(700));
        n += 1;
        true
    })
    .unwrap();
    assert_eq!(n, 3);

    mock.register(
        "DATEDIFF_BIG(MICROSECOND, CONVERT(",
        log_rows().with_delay(Duration::from_secs(3)),
    );
    let started = Instant::now();
    let err = s.query(&Query::default(), &mut |_, _| true).unwrap_err();
    assert!(err.to_string().contains("within 1s"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "four bounded attempts: {:?}",
        started.elapsed()
    );
}

/// A bulk load that times out may still commit on the server. Before trying it again the
/// store asks whether its last row is there, and does not load the rows twice.
#[test]
fn a_timed_out_bulk_load_is_checked_before_it_is_retried() {
    use logrelay::message::LogMessage;
    use logrelay::store::Batch;
    let mock = Mock::start(false);
    mock.register(&schema::check_sql(), schema_state(150, Some(0), &[]));
    // The load's first statement (tiberius asks for the columns' metadata) hangs past
    // the command timeout; the fake cannot do a bulk load, so a retried load would fail.
    let metadata = format!(
        "SELECT TOP 0 {} FROM dbo.Logs",
        logrelay::store::mssql::insert_columns().join(", ")
    );
    mock.register(
        &metadata,
        QueryResponse::new(vec![], vec![]).with_delay(Duration::from_secs(20)),
    );
    mock.register(
        "SELECT COUNT_BIG(*) FROM",
        QueryResponse::new(
            vec![ColumnDefinition::new("n", SqlDataType::BigInt)],
            vec![Row::new(vec![ColumnValue::BigInt(1)])],
        ),
    );
    assert!(COMMITTED_SQL.starts_with("SELECT COUNT_BIG(*) FROM dbo.Logs"));
    let mut w =
        store::open_writer(&mock.url("encrypt=off&connectTimeout=5&commandTimeout=1")).unwrap();
    let mut batch = Batch::new();
    batch.push(&LogMessage::new("once", Level::Info, chrono::Utc::now()));
    let started = Instant::now();
    assert_eq!(
        w.insert(&[batch]).unwrap(),
        1,
        "the second attempt finds the rows committed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A batch of an acknowledging client named `client`, its rows numbered `seqs`.
fn numbered(client: &str, seqs: std::ops::RangeInclusive<u64>) -> logrelay::store::Batch {
    use logrelay::message::LogMessage;
    use logrelay::store::batch::AckPoint;
    let mut batch = logrelay::store::Batch::new();
    batch.set_delivery(Some(client.into()), Arc::new(AckPoint::default()));
    for seq in seqs {
        batch.push(&LogMessage::new(
            format!("seq {seq}"),
            Level::Info,
            chrono::Utc::now(),
        ));
        batch.push_seq(Some(seq));
    }
    batch
}

/// Rows of acknowledging clients are loaded in a transaction that first reads their
/// marks in dbo.ClientSeq: a chunk resent in full is not loaded at all (nothing stored,
/// no bulk load), a chunk with one row above the mark, or a client without a mark, is.
/// What is stored in the end (and the MERGE of the marks) needs a real server: the
/// `resends_are_stored_once` twin in store_conformance.rs.
#[test]
fn resent_rows_at_or_below_the_stored_mark_are_not_loaded() {
    let mock = Mock::start(false);
    mock.register(&schema::check_sql(), schema_state(150, Some(0), &[]));
    // The fake cannot bulk-load: a load that is attempted fails here, first statement
    // (as a deadlock, so the store gives up after its few quick retries).
    let metadata = format!(
        "SELECT TOP 0 {} FROM dbo.Logs",
        logrelay::store::mssql::insert_columns().join(", ")
    );
    mock.register(
        &metadata,
        QueryResponse::error_only(TerminalError::new(1205, 13, "bulk load attempted")),
    );
    // The marks the table holds (the fake answers whatever the WHERE clause asks).
    assert!(
        logrelay::store::mssql::client_seq::read_sql(1).contains("WITH (UPDLOCK, HOLDLOCK) WHERE ")
    );
    mock.register(
        "WITH (UPDLOCK, HOLDLOCK) WHERE ",
        QueryResponse::new(
            vec![
                ColumnDefinition::new("client", SqlDataType::NVarChar),
                ColumnDefinition::new("last_seq", SqlDataType::BigInt),
            ],
            vec![
                Row::new(vec![
                    ColumnValue::NVarChar("edge-1".into()),
                    ColumnValue::BigInt(100),
                ]),
                Row::new(vec![
                    ColumnValue::NVarChar("other".into()),
                    ColumnValue::BigInt(7),
                ]),
            ],
        ),
    );
    let mut w = store::open_writer(&mock.url("encrypt=off&connectTimeout=5")).unwrap();
    assert_eq!(
        w.insert(&[numbered("edge-1", 51..=100), numbered("other", 1..=7)])
            .unwrap(),
        0,
        "every row at or below its client's mark: nothing loaded, nothing stored"
    );
    let in_transaction = mock
        .connections
        .blocking_lock()
        .all()
        .values()
        .flat_map(|c| c.transaction_descriptor_headers.clone())
        .filter(|(descriptor, _)| *descriptor != 0)
        .count();
    assert!(
        in_transaction >= 1,
        "the marks are read inside the transaction (its descriptor on the request)"
    );
    for (batch, why) in [
        (numbered("edge-1", 95..=101), "101 is above the mark"),
        (numbered("new-client", 1..=3), "a client with no mark yet"),
    ] {
        let err = w.insert(&[batch]).expect_err(why).to_string();
        assert!(err.contains("bulk load attempted"), "{why}: {err}");
    }
}
