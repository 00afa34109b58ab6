# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_logq_global_optspecs
    string join \n p/priority= S/since= U/until= s/source= H/host= facility= g/grep= w/word= n/lines= count F/field= N/fields A/after-context= B/before-context= C/context= no-pager e/pager-end r/reverse f/follow o/output= a/all output-fields= utc color= fail-if-empty db= config= archive= disk-usage h/help V/version
end

function __fish_logq_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_logq_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_logq_using_subcommand
    set -l cmd (__fish_logq_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c logq -n "__fish_logq_needs_command" -s p -l priority -d 'Level or range: one level means it and everything more severe; FROM..TO is inclusive' -r
complete -c logq -n "__fish_logq_needs_command" -s S -l since -d 'Rows at or after this time' -r
complete -c logq -n "__fish_logq_needs_command" -s U -l until -d 'Rows at or before this time' -r
complete -c logq -n "__fish_logq_needs_command" -s s -s t -l source -d 'Source (app name / tag, also -t); repeatable, ORed; `*` and `?` glob' -r
complete -c logq -n "__fish_logq_needs_command" -s H -l host -d 'Hostname; repeatable, ORed; `*` and `?` glob' -r
complete -c logq -n "__fish_logq_needs_command" -l facility -d 'Facilities, names or numbers, comma separated' -r
complete -c logq -n "__fish_logq_needs_command" -s g -l grep -d 'Regular expression on the message; all lower case means case-insensitive' -r
complete -c logq -n "__fish_logq_needs_command" -s w -l word -d 'Whole word every row must contain, in the message, host, source or a structured-data value, any case; repeatable, ANDed. Uses the store\'s word index' -r
complete -c logq -n "__fish_logq_needs_command" -s n -l lines -d 'Show the newest N rows (printed oldest first), or all [default: all; 10 with -f or a bare -n; 1000 with -e]' -r
complete -c logq -n "__fish_logq_needs_command" -s F -l field -d 'List the values of FIELD in the matching rows, with counts: level, source, host, facility' -r
complete -c logq -n "__fish_logq_needs_command" -s A -l after-context -d 'Also print N rows after each match, from the same host and source' -r
complete -c logq -n "__fish_logq_needs_command" -s B -l before-context -d 'Also print N rows before each match, from the same host and source' -r
complete -c logq -n "__fish_logq_needs_command" -s C -l context -d '-A N and -B N' -r
complete -c logq -n "__fish_logq_needs_command" -s o -l output -d 'Output format' -r -f -a "short\t''
short-iso\t''
short-precise\t''
short-unix\t'Seconds since the epoch with microseconds, as journalctl\'s `short-unix`'
short-full\t'Weekday, full date and zone, as journalctl\'s `short-full`'
verbose\t'Every field on its own line'
json\t''
json-pretty\t''
cat\t''"
complete -c logq -n "__fish_logq_needs_command" -l output-fields -d 'Only these fields in json, json-pretty and verbose output (comma separated)' -r
complete -c logq -n "__fish_logq_needs_command" -l color -d 'Colour by level: auto = only on a terminal and without NO_COLOR' -r -f -a "auto\t''
always\t''
never\t''"
complete -c logq -n "__fish_logq_needs_command" -l db -d 'The store [default: the config file\'s db, or the default SQLite file]' -r
complete -c logq -n "__fish_logq_needs_command" -l config -d 'logrelayd\'s TOML config file, to find its store' -r -F
complete -c logq -n "__fish_logq_needs_command" -l archive -d 'Also query the archives in DIR (default: the config file\'s retention.archive-dir)' -r -F
complete -c logq -n "__fish_logq_needs_command" -l count -d 'Print the number of matching rows instead of the rows'
complete -c logq -n "__fish_logq_needs_command" -s N -l fields -d 'List the fields rows have (and the SDID.PARAM names of recent rows)'
complete -c logq -n "__fish_logq_needs_command" -l no-pager -d 'Do not pipe the output into a pager'
complete -c logq -n "__fish_logq_needs_command" -s e -l pager-end -d 'Start the pager at the end (and show the newest 1000 rows unless -n says otherwise)'
complete -c logq -n "__fish_logq_needs_command" -s r -l reverse -d 'Newest first'
complete -c logq -n "__fish_logq_needs_command" -s f -l follow -d 'Print the last rows, then new rows as they are stored'
complete -c logq -n "__fish_logq_needs_command" -s a -l all -d 'Print control characters in text output raw (default: escaped as \\xNN)'
complete -c logq -n "__fish_logq_needs_command" -l utc -d 'Show times in UTC (default: the local zone)'
complete -c logq -n "__fish_logq_needs_command" -l fail-if-empty -d 'Exit 1 when no row matched'
complete -c logq -n "__fish_logq_needs_command" -l disk-usage -d 'Show the store\'s size on disk, rows, oldest and newest time, and the archives\' size'
complete -c logq -n "__fish_logq_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logq -n "__fish_logq_needs_command" -s V -l version -d 'Print version'
complete -c logq -n "__fish_logq_needs_command" -a "send" -d 'Send one message, or every line of standard input, to a relay'
complete -c logq -n "__fish_logq_needs_command" -a "simulate" -d 'Simulate many client services sending logs (also a load generator)'
complete -c logq -n "__fish_logq_needs_command" -a "stats" -d 'Count the matching rows per time bucket and per level, source, host or facility'
complete -c logq -n "__fish_logq_needs_command" -a "vacuum" -d 'Remove the oldest rows (archiving them first when an archive dir is set), then give the free space back to the file system'
complete -c logq -n "__fish_logq_needs_command" -a "archive" -d 'Look after archives: `logq archive verify DIR`'
complete -c logq -n "__fish_logq_using_subcommand send" -s p -l priority -d 'Level: a name, an alias or 0-7' -r
complete -c logq -n "__fish_logq_using_subcommand send" -s s -l source -d 'Source (app name / tag)' -r
complete -c logq -n "__fish_logq_using_subcommand send" -l facility -d 'Facility name or number' -r
complete -c logq -n "__fish_logq_using_subcommand send" -s H -l host -d 'Hostname to send [default: this machine\'s]' -r
complete -c logq -n "__fish_logq_using_subcommand send" -l format -d 'Wire format' -r -f -a "json\t'Native NDJSON, one object per line'
rfc5424\t'RFC 5424 with RFC 6587 octet counting'
rfc3164\t'RFC 3164 (BSD syslog), LF-terminated'"
complete -c logq -n "__fish_logq_using_subcommand send" -l server -d 'The relay, HOST:PORT' -r
complete -c logq -n "__fish_logq_using_subcommand send" -l ack-timeout -d 'With --acks: how long to wait for the last acknowledgement' -r
complete -c logq -n "__fish_logq_using_subcommand send" -l tls-ca -d 'CA certificates (PEM) the relay\'s certificate must chain to: connect with TLS' -r -F
complete -c logq -n "__fish_logq_using_subcommand send" -l tls-cert -d 'Client certificate chain (PEM), for relays that ask for one (mutual TLS)' -r -F
complete -c logq -n "__fish_logq_using_subcommand send" -l tls-key -d 'The private key of --tls-cert (PEM)' -r -F
complete -c logq -n "__fish_logq_using_subcommand send" -l tls-server-name -d 'The name the relay\'s certificate must carry [default: the host of --server]' -r
complete -c logq -n "__fish_logq_using_subcommand send" -l token -d 'Token for the relay\'s hello line (its auth-tokens-file). ps shows it to every user: prefer --token-file or LOGRELAY_TOKEN' -r
complete -c logq -n "__fish_logq_using_subcommand send" -l token-file -d 'File whose first line is the token' -r -F
complete -c logq -n "__fish_logq_using_subcommand send" -l acks -d 'Ask the relay to acknowledge what it stored (native protocol, JSON only); report sent / acknowledged and fail when something was never acknowledged'
complete -c logq -n "__fish_logq_using_subcommand send" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logq -n "__fish_logq_using_subcommand simulate" -l services -d 'Number of simulated services (one connection each)' -r
complete -c logq -n "__fish_logq_using_subcommand simulate" -l count -d 'Total messages to send' -r
complete -c logq -n "__fish_logq_using_subcommand simulate" -l duration -d 'Send for this many seconds' -r
complete -c logq -n "__fish_logq_using_subcommand simulate" -l rate -d 'Messages per second in total [default: as fast as possible]' -r
complete -c logq -n "__fish_logq_using_subcommand simulate" -l protocol -d 'Wire protocols to use' -r -f -a "mixed\t'Services alternate between native JSON and RFC 5424'
json\t''
rfc5424\t''
rfc3164\t''"
complete -c logq -n "__fish_logq_using_subcommand simulate" -l server -d 'The relay, HOST:PORT' -r
complete -c logq -n "__fish_logq_using_subcommand simulate" -l seed -d 'Seed for the random choices (runs with the same seed send the same messages)' -r
complete -c logq -n "__fish_logq_using_subcommand simulate" -l ack-timeout -d 'With --acks: how long to wait for the last acknowledgement' -r
complete -c logq -n "__fish_logq_using_subcommand simulate" -l tls-ca -d 'CA certificates (PEM) the relay\'s certificate must chain to: connect with TLS' -r -F
complete -c logq -n "__fish_logq_using_subcommand simulate" -l tls-cert -d 'Client certificate chain (PEM), for relays that ask for one (mutual TLS)' -r -F
complete -c logq -n "__fish_logq_using_subcommand simulate" -l tls-key -d 'The private key of --tls-cert (PEM)' -r -F
complete -c logq -n "__fish_logq_using_subcommand simulate" -l tls-server-name -d 'The name the relay\'s certificate must carry [default: the host of --server]' -r
complete -c logq -n "__fish_logq_using_subcommand simulate" -l token -d 'Token for the relay\'s hello line (its auth-tokens-file). ps shows it to every user: prefer --token-file or LOGRELAY_TOKEN' -r
complete -c logq -n "__fish_logq_using_subcommand simulate" -l token-file -d 'File whose first line is the token' -r -F
complete -c logq -n "__fish_logq_using_subcommand simulate" -l acks -d 'Every service sends through the `Logger` with acknowledgements (native protocol); report sent / acknowledged, fail when something was never acknowledged'
complete -c logq -n "__fish_logq_using_subcommand simulate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logq -n "__fish_logq_using_subcommand stats" -l by -d 'Group by these fields: level, source, host, facility (comma separated or repeated)' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -l bucket -d 'Count per time bucket of the display zone: 1m, 1h or 1d' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -s p -l priority -d 'Level or range: one level means it and everything more severe; FROM..TO is inclusive' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -s S -l since -d 'Rows at or after this time' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -s U -l until -d 'Rows at or before this time' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -s s -s t -l source -d 'Source (app name / tag, also -t); repeatable, ORed; `*` and `?` glob' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -s H -l host -d 'Hostname; repeatable, ORed; `*` and `?` glob' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -l facility -d 'Facilities, names or numbers, comma separated' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -s g -l grep -d 'Regular expression on the message; all lower case means case-insensitive' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -s w -l word -d 'Whole word every row must contain, in the message, host, source or a structured-data value, any case; repeatable, ANDed. Uses the store\'s word index' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -s n -l lines -d 'Show the newest N rows (printed oldest first), or all [default: all; 10 with -f or a bare -n; 1000 with -e]' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -s F -l field -d 'List the values of FIELD in the matching rows, with counts: level, source, host, facility' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -s A -l after-context -d 'Also print N rows after each match, from the same host and source' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -s B -l before-context -d 'Also print N rows before each match, from the same host and source' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -s C -l context -d '-A N and -B N' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -s o -l output -d 'Output format' -r -f -a "short\t''
short-iso\t''
short-precise\t''
short-unix\t'Seconds since the epoch with microseconds, as journalctl\'s `short-unix`'
short-full\t'Weekday, full date and zone, as journalctl\'s `short-full`'
verbose\t'Every field on its own line'
json\t''
json-pretty\t''
cat\t''"
complete -c logq -n "__fish_logq_using_subcommand stats" -l output-fields -d 'Only these fields in json, json-pretty and verbose output (comma separated)' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -l color -d 'Colour by level: auto = only on a terminal and without NO_COLOR' -r -f -a "auto\t''
always\t''
never\t''"
complete -c logq -n "__fish_logq_using_subcommand stats" -l db -d 'The store [default: the config file\'s db, or the default SQLite file]' -r
complete -c logq -n "__fish_logq_using_subcommand stats" -l config -d 'logrelayd\'s TOML config file, to find its store' -r -F
complete -c logq -n "__fish_logq_using_subcommand stats" -l archive -d 'Also query the archives in DIR (default: the config file\'s retention.archive-dir)' -r -F
complete -c logq -n "__fish_logq_using_subcommand stats" -l count -d 'Print the number of matching rows instead of the rows'
complete -c logq -n "__fish_logq_using_subcommand stats" -s N -l fields -d 'List the fields rows have (and the SDID.PARAM names of recent rows)'
complete -c logq -n "__fish_logq_using_subcommand stats" -l no-pager -d 'Do not pipe the output into a pager'
complete -c logq -n "__fish_logq_using_subcommand stats" -s e -l pager-end -d 'Start the pager at the end (and show the newest 1000 rows unless -n says otherwise)'
complete -c logq -n "__fish_logq_using_subcommand stats" -s r -l reverse -d 'Newest first'
complete -c logq -n "__fish_logq_using_subcommand stats" -s f -l follow -d 'Print the last rows, then new rows as they are stored'
complete -c logq -n "__fish_logq_using_subcommand stats" -s a -l all -d 'Print control characters in text output raw (default: escaped as \\xNN)'
complete -c logq -n "__fish_logq_using_subcommand stats" -l utc -d 'Show times in UTC (default: the local zone)'
complete -c logq -n "__fish_logq_using_subcommand stats" -l fail-if-empty -d 'Exit 1 when no row matched'
complete -c logq -n "__fish_logq_using_subcommand stats" -l disk-usage -d 'Show the store\'s size on disk, rows, oldest and newest time, and the archives\' size'
complete -c logq -n "__fish_logq_using_subcommand stats" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logq -n "__fish_logq_using_subcommand vacuum" -l max-age -d 'Remove the blocks of rows wholly older than this (e.g. 30d)' -r
complete -c logq -n "__fish_logq_using_subcommand vacuum" -l max-size -d 'Remove the oldest rows until the store (pages in use and WAL) fits in this' -r
complete -c logq -n "__fish_logq_using_subcommand vacuum" -l archive -d 'Archive what is removed here first (default: the config file\'s retention.archive-dir)' -r -F
complete -c logq -n "__fish_logq_using_subcommand vacuum" -l db -d 'The store [default: the config file\'s db, or the default SQLite file]' -r
complete -c logq -n "__fish_logq_using_subcommand vacuum" -l config -d 'logrelayd\'s TOML config file, to find its store and archive dir' -r -F
complete -c logq -n "__fish_logq_using_subcommand vacuum" -l dry-run -d 'Say what would be removed, and remove nothing'
complete -c logq -n "__fish_logq_using_subcommand vacuum" -s h -l help -d 'Print help'
complete -c logq -n "__fish_logq_using_subcommand archive; and not __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c logq -n "__fish_logq_using_subcommand archive; and not __fish_seen_subcommand_from verify" -f -a "verify" -d 'Check every archive file against its manifest (size, SHA-256, records, ranges)'
complete -c logq -n "__fish_logq_using_subcommand archive; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
