SELECT id, time_us, DATEDIFF_BIG(MICROSECOND, CONVERT(datetime2(6), '1970-01-01T00:00:00', 126), received), severity, facility, hostname, source, procid, msgid, structured_data, message, protocol, peer FROM dbo.Logs WHERE time_us >= @P1 AND time_us <= @P2 ORDER BY time_us ASC, id ASC
-- params: [Int(1700000000000000), Int(1700003600000000)]
