//! The TLS and token flags of `logq send` and `logq simulate`, and the connection they
//! make to the relay (through the client's [`Connector`], as the `Logger` connects).

use super::error::CliError;
use crate::client::ClientAuth;
use crate::client::connect::{ConnectError, Connector, Stream};
use clap::Args;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// The variable that gives the token without showing it to `ps`.
pub const TOKEN_ENV: &str = "LOGRELAY_TOKEN";

#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// CA certificates (PEM) the relay's certificate must chain to: connect with TLS
    #[arg(long, value_name = "FILE", env = "LOGRELAY_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate chain (PEM), for relays that ask for one (mutual TLS)
    #[arg(long, value_name = "FILE", env = "LOGRELAY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, value_name = "FILE", env = "LOGRELAY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// The name the relay's certificate must carry [default: the host of --server]
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Token for the relay's hello line (its auth-tokens-file). ps shows it to every
    /// user: prefer --token-file or LOGRELAY_TOKEN
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// File whose first line is the token
    #[arg(long, value_name = "FILE", env = "LOGRELAY_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl AuthArgs {
    /// The client settings: the token from --token (with a warning), --token-file or
    /// LOGRELAY_TOKEN, in that order.
    pub fn client_auth(&self) -> Result<ClientAuth, CliError> {
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => {
                eprintln!(
                    "logq: warning: --token is shown by ps to every user of this machine: use --token-file or {TOKEN_ENV}"
                );
                Some(t.clone())
            }
            (None, Some(path)) => Some(
                ClientAuth::read_token_file(path).map_err(|e| CliError::Runtime(e.to_string()))?,
            ),
            (None, None) => std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()),
        };
        Ok(ClientAuth {
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            server_name: self.tls_server_name.clone(),
            token,
        })
    }
}

/// How `logq` reaches one relay.
pub struct Target {
    pub server: String,
    pub addrs: Vec<SocketAddr>,
    pub connector: Connector,
    pub auth: ClientAuth,
}

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Target {
    /// Resolves the server and reads the TLS files and token: errors are clear now.
    pub fn new(server: &str, args: &AuthArgs) -> Result<Target, CliError> {
        let auth = args.client_auth()?;
        let connector =
            Connector::new(&auth, server).map_err(|e| CliError::Runtime(e.to_string()))?;
        let addrs: Vec<SocketAddr> = server
            .to_socket_addrs()
            .map_err(|e| unreachable(server, &e.to_string()))?
            .collect();
        if addrs.is_empty() {
            return Err(unreachable(server, "no address"));
        }
        Ok(Target {
            server: server.to_string(),
            addrs,
            connector,
            auth,
        })
    }

    /// A connection, with the hello when TLS or a token call for one; refusals and TLS
    /// failures are errors that say why.
    pub fn open(&self) -> Result<Stream, CliError> {
        self.connector
            .open(&self.addrs, CONNECT_TIMEOUT, None)
            .map(|(s, _)| s)
            .map_err(|e| self.error(&e))
    }

    pub fn error(&self, e: &ConnectError) -> CliError {
        if e.is_unreachable() {
            unreachable(&self.server, &e.to_string())
        } else {
            CliError::Runtime(e.to_string())
        }
    }
}

fn unreachable(server: &str, e: &str) -> CliError {
    CliError::Runtime(format!(
        "cannot reach the relay at {server}: {e} (is logrelayd running? --server HOST:PORT)"
    ))
}
