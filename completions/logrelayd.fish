# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_logrelayd_global_optspecs
    string join \n config= no-udp print-schema= l/listen= listen-relp= udp= db= forward-to= forward-tls-ca= forward-tls-cert= forward-tls-key= forward-tls-server-name= forward-token-file= max-frame= max-connections= idle-timeout= batch-rows= zone= stats-interval= listen-tls= tls-cert= tls-key= tls-client-ca= tls-allow= auth-tokens-file= auth-required= log= memory-budget= spool-dir= spool-max-size= udp-recv-buffer= metrics= retention-max-age= retention-max-size= retention-keep-free= retention-archive-dir= h/help V/version
end

function __fish_logrelayd_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_logrelayd_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_logrelayd_using_subcommand
    set -l cmd (__fish_logrelayd_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c logrelayd -n "__fish_logrelayd_needs_command" -l config -d 'TOML configuration file (see fixtures/logrelayd.toml)' -r -F
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l print-schema -d 'Print the store schema (sqlite or mssql) and exit' -r -f -a "sqlite\t''
mssql\t''"
complete -c logrelayd -n "__fish_logrelayd_needs_command" -s l -l listen -d 'Address to listen on, TCP and UDP (repeatable, or comma separated) [default: 127.0.0.1:5514]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l listen-relp -d 'Address to take RELP on (rsyslog\'s omrelp; conventionally port 2514), repeatable [default: none]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l udp -d 'Also receive syslog datagrams on the listen ports [default: true]' -r -f -a "true\t''
false\t''"
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l db -d 'The store: sqlite:PATH, a SQL Server connection (mssql://… or ADO.NET), or none (forward only) [default: sqlite:~/.local/share/logrelay/logs.db]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l forward-to -d 'Upstream relay to forward everything to, HOST:PORT: native protocol with acknowledgements, through a spool of its own (repeatable, or comma separated; `[[forward]]` tables in the file) [default: none]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l forward-tls-ca -d 'CA certificates (PEM) the upstream relays\' certificates must chain to: forward over TLS [default: plain TCP]' -r -F
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l forward-tls-cert -d 'Client certificate chain (PEM) for upstream relays that ask for one [default: none]' -r -F
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l forward-tls-key -d 'The private key of forward-tls-cert (PEM)' -r -F
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l forward-tls-server-name -d 'The name the upstream relays\' certificates must carry [default: the host of each forward-to]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l forward-token-file -d 'File whose first line is the token for the upstream relays\' hello, read at each connect [default: none]' -r -F
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l max-frame -d 'Longest frame in bytes; longer frames are truncated and counted [default: 65536]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l max-connections -d 'Most TCP connections at once; more are refused and counted [default: 10000]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l idle-timeout -d 'Close a connection idle this long (seconds, or 10min, 1h) [default: 10min]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l batch-rows -d 'Most rows per store transaction [default: 5000]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l zone -d 'Zone for RFC 3164 times, which carry none: local, UTC or +HH:MM [default: local]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l stats-interval -d 'Time between counter reports in the log (seconds, or 1min) [default: 60s]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l listen-tls -d 'TLS listener, RFC 5425 (repeatable, or comma separated; 6514 by convention) [default: off]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l tls-cert -d 'The TLS listeners\' certificate chain (PEM); reloaded on SIGHUP and when it changes' -r -F
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l tls-key -d 'The private key of tls-cert (PEM)' -r -F
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l tls-client-ca -d 'CA certificates (PEM) that client certificates must chain to: mutual TLS [default: off]' -r -F
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l tls-allow -d 'Who may send over TLS (repeatable): a client certificate name glob (SAN or CN) or sha256:HEX fingerprint [default: any client certificate tls-client-ca accepts]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l auth-tokens-file -d 'Tokens for the native protocol\'s hello line, one per line (reloaded like the certificates)' -r -F
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l auth-required -d 'Every TCP connection must authenticate: a client certificate or a hello token [default: false]' -r -f -a "true\t''
false\t''"
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l log -d 'Level of the relay\'s own log: error, warn, info, debug or trace [default: info]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l memory-budget -d 'Bytes read but not yet committed or spooled, all connections together [default: 64MiB]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l spool-dir -d 'Disk spool for when the store fails [default: beside the store, logs.db.spool]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l spool-max-size -d 'Most bytes the spool may take; when full, senders are held back [default: 1GiB]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l udp-recv-buffer -d 'UDP socket receive buffer asked of the kernel [default: 8MiB]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l metrics -d 'HTTP address for /metrics, /livez and /readyz, e.g. 127.0.0.1:9514, or off [default: off]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l retention-max-age -d 'Remove (whole blocks of) rows older than this, e.g. 30d [default: off]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l retention-max-size -d 'Keep the store (file and WAL; SQL Server: the table\'s used space) within this size, e.g. 20GiB, removing the oldest rows [default: off]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l retention-keep-free -d 'Remove the oldest rows while the store\'s file system has less free space than this; SQLite only [default: off]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l retention-archive-dir -d 'Before removing rows, write them to zstd-compressed JSON files here [default: off]' -r
complete -c logrelayd -n "__fish_logrelayd_needs_command" -l no-udp -d 'Do not receive UDP datagrams (the same as --udp false)'
complete -c logrelayd -n "__fish_logrelayd_needs_command" -s h -l help -d 'Print help'
complete -c logrelayd -n "__fish_logrelayd_needs_command" -s V -l version -d 'Print version'
complete -c logrelayd -n "__fish_logrelayd_needs_command" -f -a "migrate" -d 'Bring the store\'s schema up to date step by step, showing progress, and exit (e.g. `logrelayd --db URL migrate`; for a populated SQL Server table, no time limit)'
complete -c logrelayd -n "__fish_logrelayd_needs_command" -f -a "spool" -d 'Inspect the disk spool (read-only; the daemon may be running)'
complete -c logrelayd -n "__fish_logrelayd_needs_command" -f -a "check-config" -d 'Check a configuration file (and the flags and variables given with it), then exit: 0 when the relay would start with it, 2 with the reason when not'
complete -c logrelayd -n "__fish_logrelayd_using_subcommand migrate" -l config -d 'TOML configuration file (see fixtures/logrelayd.toml)' -r -F
complete -c logrelayd -n "__fish_logrelayd_using_subcommand migrate" -l db -d 'The store: sqlite:PATH, a SQL Server connection (mssql://… or ADO.NET), or none (forward only) [default: sqlite:~/.local/share/logrelay/logs.db]' -r
complete -c logrelayd -n "__fish_logrelayd_using_subcommand migrate" -l spool-dir -d 'Disk spool for when the store fails [default: beside the store, logs.db.spool]' -r
complete -c logrelayd -n "__fish_logrelayd_using_subcommand migrate" -s h -l help -d 'Print help'
complete -c logrelayd -n "__fish_logrelayd_using_subcommand spool; and not __fish_seen_subcommand_from status verify" -l config -d 'TOML configuration file (see fixtures/logrelayd.toml)' -r -F
complete -c logrelayd -n "__fish_logrelayd_using_subcommand spool; and not __fish_seen_subcommand_from status verify" -l db -d 'The store: sqlite:PATH, a SQL Server connection (mssql://… or ADO.NET), or none (forward only) [default: sqlite:~/.local/share/logrelay/logs.db]' -r
complete -c logrelayd -n "__fish_logrelayd_using_subcommand spool; and not __fish_seen_subcommand_from status verify" -l spool-dir -d 'Disk spool for when the store fails [default: beside the store, logs.db.spool]' -r
complete -c logrelayd -n "__fish_logrelayd_using_subcommand spool; and not __fish_seen_subcommand_from status verify" -s h -l help -d 'Print help'
complete -c logrelayd -n "__fish_logrelayd_using_subcommand spool; and not __fish_seen_subcommand_from status verify" -f -a "status" -d 'Segments, bytes and rows waiting to be stored'
complete -c logrelayd -n "__fish_logrelayd_using_subcommand spool; and not __fish_seen_subcommand_from status verify" -f -a "verify" -d 'Check every record\'s checksum; exit 1 if a record is torn or damaged'
complete -c logrelayd -n "__fish_logrelayd_using_subcommand spool; and __fish_seen_subcommand_from status" -l config -d 'TOML configuration file (see fixtures/logrelayd.toml)' -r -F
complete -c logrelayd -n "__fish_logrelayd_using_subcommand spool; and __fish_seen_subcommand_from status" -l db -d 'The store: sqlite:PATH, a SQL Server connection (mssql://… or ADO.NET), or none (forward only) [default: sqlite:~/.local/share/logrelay/logs.db]' -r
complete -c logrelayd -n "__fish_logrelayd_using_subcommand spool; and __fish_seen_subcommand_from status" -l spool-dir -d 'Disk spool for when the store fails [default: beside the store, logs.db.spool]' -r
complete -c logrelayd -n "__fish_logrelayd_using_subcommand spool; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c logrelayd -n "__fish_logrelayd_using_subcommand spool; and __fish_seen_subcommand_from verify" -l config -d 'TOML configuration file (see fixtures/logrelayd.toml)' -r -F
complete -c logrelayd -n "__fish_logrelayd_using_subcommand spool; and __fish_seen_subcommand_from verify" -l db -d 'The store: sqlite:PATH, a SQL Server connection (mssql://… or ADO.NET), or none (forward only) [default: sqlite:~/.local/share/logrelay/logs.db]' -r
complete -c logrelayd -n "__fish_logrelayd_using_subcommand spool; and __fish_seen_subcommand_from verify" -l spool-dir -d 'Disk spool for when the store fails [default: beside the store, logs.db.spool]' -r
complete -c logrelayd -n "__fish_logrelayd_using_subcommand spool; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c logrelayd -n "__fish_logrelayd_using_subcommand check-config" -l config -d 'TOML configuration file (see fixtures/logrelayd.toml)' -r -F
complete -c logrelayd -n "__fish_logrelayd_using_subcommand check-config" -l db -d 'The store: sqlite:PATH, a SQL Server connection (mssql://… or ADO.NET), or none (forward only) [default: sqlite:~/.local/share/logrelay/logs.db]' -r
complete -c logrelayd -n "__fish_logrelayd_using_subcommand check-config" -l spool-dir -d 'Disk spool for when the store fails [default: beside the store, logs.db.spool]' -r
complete -c logrelayd -n "__fish_logrelayd_using_subcommand check-config" -s h -l help -d 'Print help'
