//! The SQL Server backend against a TDS fake on loopback (`mssql-mock-tds`): login with and
//! without TLS, the schema statements, a result read back, a server error surfacing
//! clearly, a timeout dropping the connection and a later reconnect, the connection pool
//! (reuse, sharing, its size limit, no reuse after an error), and query rows streamed
//! into records. What a fake cannot show: real T-SQL semantics (the fake answers unknown
//! statements with an empty result and canned rows whatever the WHERE clause), bulk load,
//! rowversion ordering — those need LOGRELAY_TEST_MSSQL (store_conformance.rs).
//! Retention: the statements sent (read off the wire by a proxy), their order and what a
//! failure mid-way leaves, against a table the test keeps.

use logrelay::message::{Facility, Level};
use logrelay::store::archive::ArchiveDir;
use logrelay::store::mssql::retention::{BOUNDS_SQL, MssqlRetention, SPACE_SQL, TIMES_SQL};
use logrelay::store::mssql::{COMMITTED_SQL, CURSOR_SQL, schema};
use logrelay::store::retention::{Policy, Removed, RetentionError};
use logrelay::store::{self, Query, StoreUrl};
use mssql_mock_tds::query_response::QueryRegistry;
use mssql_mock_tds::{
    ColumnDefinition, ColumnValue, ConnectionStore, MockTdsServer, QueryResponse, Row, SqlDataType,
    TerminalError,
};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
        url_at(self.addr, options)
    }
}

fn url_at(addr: SocketAddr, options: &str) -> StoreUrl {
    StoreUrl::parse(&format!("mssql://sa:pw@{addr}/LoggingDB?{options}")).unwrap()
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

/// A result of one row holding one value.
fn one_value(name: &str, v: ColumnValue) -> QueryResponse {
    QueryResponse::new(
        vec![ColumnDefinition::new(name, v.data_type())],
        vec![Row::new(vec![v])],
    )
}

fn cursor(v: i64) -> QueryResponse {
    one_value("rv", ColumnValue::BigInt(v))
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
    one_value("r", ColumnValue::Int(code))
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
    log_rows_of(
        SqlDataType::Int,
        vec![
            (
                ColumnValue::Int(1),
                1_790_000_000_000_001,
                3,
                "disk full".into(),
            ),
            (
                ColumnValue::Int(2),
                1_790_000_000_000_002,
                6,
                "naïve café ✓".into(),
            ),
            (
                ColumnValue::Int(3),
                1_790_000_000_000_003,
                4,
                "third".into(),
            ),
        ],
    )
}

/// Rows of the store's SELECT: id, event time, severity and message; the rest fixed.
fn log_rows_of(id: SqlDataType, rows: Vec<(ColumnValue, i64, u8, String)>) -> QueryResponse {
    use SqlDataType as T;
    let columns = [
        ("id", id),
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
    let row = |(id, time_us, severity, message): (ColumnValue, i64, u8, String)| {
        Row::new(vec![
            id,
            ColumnValue::BigInt(time_us),
            ColumnValue::BigInt(time_us + 500),
            ColumnValue::TinyInt(severity),
            ColumnValue::TinyInt(16),
            text("web-1"),
            text("nginx"),
            ColumnValue::NVarCharMaxNull,
            ColumnValue::NVarCharMaxNull,
            utf16(r#"{"origin":{"ip":"10.0.0.1"}}"#),
            utf16(&message),
            text("rfc5424"),
            text("127.0.0.1:5000"),
        ])
    };
    QueryResponse::new(
        columns
            .iter()
            .map(|(name, t)| ColumnDefinition::new(*name, *t))
            .collect(),
        rows.into_iter().map(row).collect(),
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
    let metadata = bulk_metadata_sql();
    mock.register(
        &metadata,
        QueryResponse::new(vec![], vec![]).with_delay(Duration::from_secs(20)),
    );
    mock.register(
        "SELECT COUNT_BIG(*) FROM",
        one_value("n", ColumnValue::BigInt(1)),
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

/// The first statement of a bulk load (tiberius asks for the columns' metadata).
fn bulk_metadata_sql() -> String {
    format!(
        "SELECT TOP 0 {} FROM dbo.Logs",
        logrelay::store::mssql::insert_columns().join(", ")
    )
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
    let metadata = bulk_metadata_sql();
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

// Retention. The fake answers statements by their text only, so a proxy in front of it
// reads each request the store sends (the statement's text and its bigint parameters,
// as they are on the wire) and registers the answer a table of ids and times gives,
// before passing the request on: the statements checked are the ones really sent.

/// A statement the store sent: its kind and its bigint parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    kind: &'static str,
    params: Vec<i64>,
}

fn sent(kind: &'static str, params: &[i64]) -> Sent {
    Sent {
        kind,
        params: params.to_vec(),
    }
}

/// Retention's parameterised statements by an upper-case piece of their text (what the
/// fake matches them by too), with their number of parameters.
const STATEMENTS: [(&str, &str, usize); 4] = [
    ("first-old", "WITH (INDEX(", 2),
    ("window", "GROUP BY", 3),
    ("rows", "DATEDIFF_BIG(MICROSECOND, CONVERT(", 2),
    ("delete", "DELETE TOP (", 3),
];

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// The next whole statement in a connection's request bytes from `pos` (an RPC: the
/// text in UTF-16, then each bigint parameter as INTN of 8 bytes: 0x26 0x08, its
/// length 8 and the value), moving `pos` past it.
fn next_statement(buf: &[u8], pos: &mut usize) -> Option<Sent> {
    let (at, kind, len, n) = STATEMENTS
        .iter()
        .filter_map(|(kind, text, n)| {
            let needle = utf16le(text);
            let i = buf[*pos..]
                .windows(needle.len())
                .position(|w| w == needle)?;
            Some((*pos + i, *kind, needle.len(), *n))
        })
        .min_by_key(|t| t.0)?;
    let mut at = at + len;
    let mut params = Vec::new();
    while params.len() < n {
        let i = at + buf[at..].windows(3).position(|w| w == [0x26, 8, 8])? + 3;
        params.push(i64::from_le_bytes(buf.get(i..i + 8)?.try_into().ok()?));
        at = i + 8;
    }
    *pos = at;
    Some(Sent { kind, params })
}

type Answer = Arc<Mutex<dyn FnMut(&Sent) + Send>>;
/// What a pipe does with the bytes it passes on.
type Seen = Box<dyn FnMut(&[u8]) + Send>;

/// A loopback proxy in front of the fake: records the statements and lets `answer`
/// register the fake's response to each before the request goes on.
struct Proxy {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<Sent>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(to: SocketAddr, answer: Answer) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (sent.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut pipes = Vec::new();
            while !halt.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let server = std::net::TcpStream::connect(to).unwrap();
                        pipes.extend(pipe(client, server, &log, &answer, &halt));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for p in pipes {
                let _ = p.join();
            }
        });
        Proxy {
            addr,
            sent,
            stop,
            thread: Some(thread),
        }
    }

    fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies both ways until either side closes or the proxy stops; requests are read for
/// statements first.
fn pipe(
    client: std::net::TcpStream,
    server: std::net::TcpStream,
    log: &Arc<Mutex<Vec<Sent>>>,
    answer: &Answer,
    stop: &Arc<AtomicBool>,
) -> [std::thread::JoinHandle<()>; 2] {
    let tick = Some(Duration::from_millis(50));
    for s in [&client, &server] {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(tick).unwrap();
    }
    let copy = |mut from: std::net::TcpStream,
                mut to: std::net::TcpStream,
                stop: Arc<AtomicBool>,
                mut seen: Seen| {
        std::thread::spawn(move || {
            let mut chunk = vec![0u8; 65536];
            loop {
                match from.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        seen(&chunk[..n]);
                        if to.write_all(&chunk[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) && !stop.load(Ordering::Relaxed) => {}
                    Err(_) => break,
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        })
    };
    let (log, answer) = (log.clone(), answer.clone());
    let (mut buf, mut pos) = (Vec::new(), 0);
    let up = copy(
        client.try_clone().unwrap(),
        server.try_clone().unwrap(),
        stop.clone(),
        Box::new(move |bytes| {
            buf.extend_from_slice(bytes);
            while let Some(s) = next_statement(&buf, &mut pos) {
                (answer.lock().unwrap())(&s);
                log.lock().unwrap().push(s);
            }
        }),
    );
    let down = copy(server, client, stop.clone(), Box::new(|_| {}));
    [up, down]
}

/// The table the fake answers retention from: id → event time; statements of a kind
/// can be made to fail from their n-th on; each delete notes whether an archive
/// manifest covered its ids when it reached the server.
struct Table {
    rows: BTreeMap<i64, i64>,
    fail: Option<(&'static str, usize)>,
    seen: BTreeMap<&'static str, usize>,
    archive: std::path::PathBuf,
    unarchived_deletes: usize,
}

fn ids_of(rows: &[(i64, i64)]) -> Vec<i64> {
    rows.iter().map(|r| r.0).collect()
}

fn bigints(names: &[&str], rows: Vec<Vec<i64>>) -> QueryResponse {
    QueryResponse::new(
        names
            .iter()
            .map(|n| ColumnDefinition::new(*n, SqlDataType::BigInt))
            .collect(),
        rows.into_iter()
            .map(|r| Row::new(r.into_iter().map(ColumnValue::BigInt).collect()))
            .collect(),
    )
}

impl Table {
    /// The response to `s`, from the table (changing it for a delete).
    fn respond(&mut self, s: &Sent) -> QueryResponse {
        let n = self.seen.entry(s.kind).or_default();
        *n += 1;
        if self
            .fail
            .is_some_and(|(kind, from)| kind == s.kind && *n >= from)
        {
            return QueryResponse::error_only(TerminalError::new(50000, 16, "injected failure"));
        }
        let p = &s.params;
        let range = |lo: i64, hi: i64| -> Vec<(i64, i64)> {
            self.rows.range(lo..=hi).map(|(i, t)| (*i, *t)).collect()
        };
        match s.kind {
            "first-old" => {
                let hit = self.rows.range(p[1]..).find(|(_, t)| **t < p[0]);
                bigints(&["id"], hit.map(|(i, _)| vec![*i]).into_iter().collect())
            }
            "window" => {
                let mut read = range(p[0], p[1] - 1);
                read.truncate(p[2] as usize);
                let mut blocks: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
                for (id, t) in read {
                    let b = blocks.entry(id / 4096).or_insert((t, t, 0));
                    *b = (b.0.min(t), b.1.max(t), b.2 + 1);
                }
                bigints(
                    &["b", "lo", "hi", "n"],
                    blocks
                        .into_iter()
                        .map(|(b, (lo, hi, n))| vec![b, lo, hi, n])
                        .collect(),
                )
            }
            "rows" => log_rows_of(
                SqlDataType::BigInt,
                range(p[0], p[1])
                    .into_iter()
                    .map(|(id, t)| (ColumnValue::BigInt(id), t, 6, format!("row {id}")))
                    .collect(),
            ),
            "delete" => {
                let covered = ArchiveDir::open(&self.archive)
                    .and_then(|d| d.covers(p[0], p[1]))
                    .unwrap_or(false);
                self.unarchived_deletes += usize::from(!covered);
                let mut gone = ids_of(&range(p[0], p[1]));
                gone.truncate(p[2] as usize);
                for id in &gone {
                    self.rows.remove(id);
                }
                bigints(&["n"], vec![vec![gone.len() as i64]])
            }
            _ => unreachable!(),
        }
    }
}

/// A fake with `rows` (id → time), behind a recording proxy, and its archive dir.
struct RetentionFake {
    table: Arc<Mutex<Table>>,
    proxy: Proxy,
    _mock: Mock,
    dir: tempfile::TempDir,
}

impl RetentionFake {
    fn start(rows: BTreeMap<i64, i64>) -> RetentionFake {
        let mock = Mock::start(false);
        let (first, last) = (rows.keys().next().copied(), rows.keys().last().copied());
        mock.register(
            BOUNDS_SQL,
            QueryResponse::new(
                ["first", "newest", "open"]
                    .iter()
                    .map(|n| ColumnDefinition::new(*n, SqlDataType::BigInt))
                    .collect(),
                vec![Row::new(vec![
                    first.map_or(ColumnValue::Null, ColumnValue::BigInt),
                    last.map_or(ColumnValue::Null, ColumnValue::BigInt),
                    ColumnValue::Null,
                ])],
            ),
        );
        let dir = tempfile::tempdir().unwrap();
        let table = Arc::new(Mutex::new(Table {
            rows,
            fail: None,
            seen: BTreeMap::new(),
            archive: dir.path().to_path_buf(),
            unarchived_deletes: 0,
        }));
        let registry = mock.registry.clone();
        let t = table.clone();
        let answer: Answer = Arc::new(Mutex::new(move |s: &Sent| {
            let response = t.lock().unwrap().respond(s);
            let text = STATEMENTS.iter().find(|x| x.0 == s.kind).unwrap().1;
            registry.blocking_lock().register(text, response);
        }));
        let proxy = Proxy::start(mock.addr, answer);
        RetentionFake {
            table,
            proxy,
            _mock: mock,
            dir,
        }
    }

    fn store(&self) -> MssqlRetention {
        let StoreUrl::Mssql(conn) = url_at(self.proxy.addr, "encrypt=off&connectTimeout=5") else {
            unreachable!()
        };
        MssqlRetention::open(&conn).unwrap()
    }

    fn archive(&self) -> ArchiveDir {
        ArchiveDir::open(self.dir.path()).unwrap()
    }

    fn ids(&self) -> Vec<i64> {
        self.table.lock().unwrap().rows.keys().copied().collect()
    }

    /// Every archived row id, file by file.
    fn archived(&self) -> Vec<i64> {
        let a = self.archive();
        let mut ids = Vec::new();
        for m in a.manifests().unwrap() {
            a.read(&m, &mut |id, _| {
                ids.push(id);
                Ok(())
            })
            .unwrap();
        }
        ids
    }
}

const DAY_US: i64 = 86_400_000_000;

/// Ids from 1 to 20,000, `step` apart (blocks 0 to 4, 4 the newest): blocks 0, 1 and 3
/// ten days old, block 2 of today. Gaps between ids as after identity cache jumps; they
/// also keep a block's rows within one response of the fake (a 64 KiB packet).
fn four_blocks_and_the_newest(now: i64, step: usize) -> BTreeMap<i64, i64> {
    (1..=20_000)
        .step_by(step)
        .map(|id| {
            let young = (8192..12288).contains(&id) || id >= 16384;
            (
                id,
                if young {
                    now - 1000
                } else {
                    now - 10 * DAY_US + id
                },
            )
        })
        .collect()
}

fn one_day() -> Policy {
    Policy {
        max_age: Some(Duration::from_secs(86_400)),
        ..Policy::default()
    }
}

/// Ids apart in the tables whose rows are archived: 64 rows a block.
const SPARSE: usize = 64;

/// The ids of a table of [`four_blocks_and_the_newest`] with [`SPARSE`] ids in `range`.
fn ids_in(range: std::ops::Range<i64>) -> Vec<i64> {
    range.filter(|id| (id - 1) % SPARSE as i64 == 0).collect()
}

fn deletes(first: i64, last: i64, statements: usize) -> Vec<Sent> {
    vec![sent("delete", &[first, last, 2000]); statements]
}

/// Blocks wholly older than max-age are found from the oldest old row on (through the
/// time index), a window of rows at a time; each run of consecutive blocks is read and
/// written to an archive file before its blocks are deleted, each by DELETE TOP (2000)
/// statements over its id range until one deletes fewer.
#[test]
fn retention_archives_each_run_then_deletes_it_by_id_range() {
    let now = chrono::Utc::now().timestamp_micros();
    let fake = RetentionFake::start(four_blocks_and_the_newest(now, SPARSE));
    let mut r = fake.store();
    let plan = r.plan(&one_day(), now, usize::MAX).unwrap();
    let summary = |p: &[Removed]| -> Vec<(i64, i64, u64)> {
        p.iter().map(|b| (b.first_id, b.last_id, b.rows)).collect()
    };
    assert_eq!(
        summary(&plan),
        [(0, 4095, 64), (4096, 8191, 64), (12288, 16383, 64)]
    );
    let mut done = Vec::new();
    r.remove(Some(&fake.archive()), &plan, &mut done).unwrap();
    assert_eq!(summary(&done), summary(&plan));
    let mut want = vec![
        sent("first-old", &[now - DAY_US, 1]),
        sent("window", &[0, 16384, 65536]),
        sent("rows", &[0, 4095]),
        sent("rows", &[4096, 8191]),
    ];
    want.extend(deletes(0, 4095, 1)); // 64 rows: fewer than 2,000, done
    want.extend(deletes(4096, 8191, 1));
    want.push(sent("rows", &[12288, 16383]));
    want.extend(deletes(12288, 16383, 1));
    assert_eq!(fake.proxy.sent(), want);
    assert_eq!(
        fake.table.lock().unwrap().unarchived_deletes,
        0,
        "every delete reached the server after its rows' manifest was written"
    );
    let removed: Vec<i64> = [ids_in(1..8192), ids_in(12288..16384)].concat();
    assert_eq!(fake.archived(), removed, "each removed row archived once");
    let kept: Vec<i64> = [ids_in(8192..12288), ids_in(16384..20_001)].concat();
    assert_eq!(fake.ids(), kept);
    let manifests = fake.archive().manifests().unwrap();
    assert_eq!(
        manifests
            .iter()
            .map(|m| (m.first_id, m.last_id, m.rows))
            .collect::<Vec<_>>(),
        [(0, 8191, 128), (12288, 16383, 64)]
    );
}

/// A server error while a run is read for its archive stops the pass: the runs before
/// it are archived and deleted, nothing of it or after it is deleted. A failed delete
/// stops it too; the next pass deletes that run without archiving it again.
#[test]
fn a_server_error_mid_pass_stops_it_with_nothing_deleted_unarchived() {
    let now = chrono::Utc::now().timestamp_micros();
    let fake = RetentionFake::start(four_blocks_and_the_newest(now, SPARSE));
    let mut r = fake.store();
    let plan = r.plan(&one_day(), now, usize::MAX).unwrap();
    assert_eq!(plan.len(), 3);
    fake.table.lock().unwrap().fail = Some(("rows", 3));
    let mut done = Vec::new();
    let err = r
        .remove(Some(&fake.archive()), &plan, &mut done)
        .unwrap_err();
    assert!(
        matches!(err, RetentionError::Archive { .. })
            && err.to_string().contains("injected failure"),
        "{err}"
    );
    assert_eq!(done.len(), 2, "the first run's two blocks");
    let sent = fake.proxy.sent();
    assert_eq!(sent.last(), Some(&sent_rows(12288, 16383)));
    assert!(
        !sent
            .iter()
            .any(|s| s.kind == "delete" && s.params[0] == 12288)
    );
    assert_eq!(fake.archived(), ids_in(1..8192));
    assert_eq!(
        fake.ids(),
        ids_in(8192..20_001),
        "nothing of block 3 deleted"
    );

    // The last run archived, then its first delete fails.
    {
        let mut t = fake.table.lock().unwrap();
        t.fail = Some(("delete", t.seen["delete"] + 1));
    }
    let plan = r.plan(&one_day(), now, usize::MAX).unwrap();
    assert_eq!(plan.iter().map(|b| b.first_id).collect::<Vec<_>>(), [12288]);
    let mut done = Vec::new();
    let err = r
        .remove(Some(&fake.archive()), &plan, &mut done)
        .unwrap_err();
    assert!(matches!(err, RetentionError::Store(_)), "{err}");
    assert!(done.is_empty());
    assert_eq!(fake.ids(), ids_in(8192..20_001), "nothing more deleted");
    fake.table.lock().unwrap().fail = None;
    let before = fake.proxy.sent().len();
    let mut done = Vec::new();
    r.remove(Some(&fake.archive()), &plan, &mut done).unwrap();
    let again: Vec<&str> = fake.proxy.sent()[before..].iter().map(|s| s.kind).collect();
    assert_eq!(again, ["delete"], "covered by its manifest: not read again");
    let mut archived = fake.archived();
    let n = archived.len();
    archived.dedup();
    assert_eq!(n, archived.len(), "no row archived twice");
    assert_eq!(archived, [ids_in(1..8192), ids_in(12288..16384)].concat());
    assert_eq!(fake.table.lock().unwrap().unarchived_deletes, 0);
}

fn sent_rows(first: i64, last: i64) -> Sent {
    sent("rows", &[first, last])
}

/// Without an archive dir nothing is read back; a missing archive dir stops the pass
/// before anything is deleted. Nothing is planned at or above the newest row's block.
#[test]
fn retention_without_archives_and_with_a_missing_archive_dir() {
    let now = chrono::Utc::now().timestamp_micros();
    let fake = RetentionFake::start(four_blocks_and_the_newest(now, 1));
    let mut r = fake.store();
    let everything = Policy {
        max_age: Some(Duration::from_secs(1)),
        ..Policy::default()
    };
    let plan = r.plan(&everything, now + DAY_US, usize::MAX).unwrap();
    assert_eq!(
        plan.iter().map(|b| b.first_id).collect::<Vec<_>>(),
        [0, 4096, 8192, 12288],
        "block 4 holds the newest row"
    );
    let gone = tempfile::tempdir().unwrap();
    let missing = ArchiveDir::open(gone.path()).unwrap();
    drop(gone);
    let err = r
        .remove(Some(&missing), &plan, &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, RetentionError::Archive { .. }), "{err}");
    assert!(!fake.proxy.sent().iter().any(|s| s.kind == "delete"));
    assert_eq!(fake.ids().len(), 20_000);
    let mut done = Vec::new();
    r.remove(None, &plan[..1], &mut done).unwrap();
    assert_eq!(done[0].rows, 4095);
    let sent_deletes: Vec<Sent> = fake
        .proxy
        .sent()
        .into_iter()
        .filter(|s| s.kind == "delete")
        .collect();
    assert_eq!(
        sent_deletes,
        deletes(0, 4095, 3),
        "2,000, 2,000, then 95: fewer, done"
    );
    assert!(!fake.proxy.sent().iter().any(|s| s.kind == "rows"));
    assert_eq!(fake.ids().first(), Some(&4096));
}

/// `logq --disk-usage` and `logq vacuum` on a SQL Server store: the sizes as
/// `sp_spaceused` answers them (text, "N KB"), the oldest and newest time; what a dry
/// run would remove, with nothing deleted; then the vacuum itself, archived first, the
/// archives passing `logq archive verify`.
#[test]
fn logq_disk_usage_and_vacuum_on_sql_server() {
    let now = chrono::Utc::now().timestamp_micros();
    let table = four_blocks_and_the_newest(now, SPARSE);
    let (oldest, newest) = (
        table.values().copied().min().unwrap(),
        table.values().copied().max().unwrap(),
    );
    let fake = RetentionFake::start(table);
    let text = |s: &str| ColumnValue::NVarChar(s.to_string());
    fake._mock.register(
        SPACE_SQL,
        QueryResponse::new(
            ["name", "rows", "reserved", "data", "index_size", "unused"]
                .iter()
                .map(|n| ColumnDefinition::new(*n, SqlDataType::NVarChar))
                .collect(),
            vec![Row::new(vec![
                text("Logs"),
                text("313                 "),
                text("2048 KB"),
                text("1200 KB"),
                text("400 KB"),
                text("448 KB"),
            ])],
        ),
    );
    fake._mock.register(
        TIMES_SQL,
        QueryResponse::new(
            vec![
                ColumnDefinition::new("oldest", SqlDataType::BigInt),
                ColumnDefinition::new("newest", SqlDataType::BigInt),
            ],
            vec![Row::new(vec![
                ColumnValue::BigInt(oldest),
                ColumnValue::BigInt(newest),
            ])],
        ),
    );
    let logq = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_logq"))
            .args(args)
            .env(
                "LOGRELAY_DB",
                format!(
                    "mssql://sa:pw@{}/LoggingDB?encrypt=off&connectTimeout=5",
                    fake.proxy.addr
                ),
            )
            .env_remove("LOGRELAY_CONFIG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let usage = logq(&["--disk-usage"]);
    assert!(
        // 2,048 KiB reserved less 448 unused.
        usage.contains("used      1.6M") && usage.contains("reserved 2.0M, of which 448.0K unused"),
        "{usage}"
    );
    assert!(usage.contains("rows      313 "), "{usage}");
    let day = |us: i64| {
        chrono::DateTime::from_timestamp_micros(us)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string()
    };
    assert!(
        usage.contains(&format!("oldest    {}", day(oldest))),
        "{usage}"
    );
    let dry = logq(&["vacuum", "--max-age", "1d", "--dry-run"]);
    assert!(
        dry.contains("would remove 192 rows in 3 blocks") && dry.contains("ids 0 to 16383"),
        "{dry}"
    );
    assert!(
        !fake
            .proxy
            .sent()
            .iter()
            .any(|s| s.kind == "delete" || s.kind == "rows")
    );
    assert_eq!(fake.ids().len(), table_len(SPARSE));
    // And done, archived first: what the archives hold checks out.
    let dir = fake.dir.path().to_str().unwrap();
    let done = logq(&["vacuum", "--max-age", "1d", "--archive", dir]);
    assert!(
        done.contains("removed 192 rows; SQL Server reuses the freed pages"),
        "{done}"
    );
    assert_eq!(
        fake.ids(),
        [ids_in(8192..12288), ids_in(16384..20_001)].concat()
    );
    let verified = logq(&["archive", "verify", dir]);
    assert!(
        verified.contains("2 files, 192 rows: all match"),
        "{verified}"
    );
    assert_eq!(fake.table.lock().unwrap().unarchived_deletes, 0);
}

/// Rows in a table of [`four_blocks_and_the_newest`].
fn table_len(step: usize) -> usize {
    (1..=20_000).step_by(step).count()
}

/// Old rows scattered through young blocks (a sender whose clock is far behind): a
/// bounded plan (the relay's) reads at most eight windows of rows, finds nothing in
/// them, and the next plan goes on where it stopped and finds the wholly old block
/// beyond; a plan by hand (unbounded) finds it at once.
#[test]
fn a_bounded_age_search_goes_on_where_the_last_stopped() {
    let now = chrono::Utc::now().timestamp_micros();
    // Block 240 (ids 983,040 to 987,135) wholly old; one old row every 20,000 ids.
    let old_block = 983_040..987_136;
    let rows: BTreeMap<i64, i64> = (1..=1_000_000)
        .map(|id| {
            let old = id % 20_000 == 0 || old_block.contains(&id);
            (id, if old { now - 10 * DAY_US } else { now - 1000 })
        })
        .collect();
    let fake = RetentionFake::start(rows);
    let want = [(983_040, 987_135, 4096)];
    let ranges = |p: Vec<Removed>| -> Vec<(i64, i64, u64)> {
        p.iter().map(|b| (b.first_id, b.last_id, b.rows)).collect()
    };
    let mut r = fake.store();
    assert!(r.plan(&one_day(), now, 256).unwrap().is_empty());
    let windows = |f: &RetentionFake| f.proxy.sent().iter().filter(|s| s.kind == "window").count();
    assert_eq!(
        windows(&fake),
        8,
        "a bounded plan stops after eight windows"
    );
    assert_eq!(ranges(r.plan(&one_day(), now, 256).unwrap()), want);
    let before = windows(&fake);
    let mut by_hand = fake.store();
    assert_eq!(
        ranges(by_hand.plan(&one_day(), now, usize::MAX).unwrap()),
        want
    );
    assert!(
        windows(&fake) - before > 8,
        "unbounded: as many windows as it takes"
    );
}
