SELECT id, time_us, DATEDIFF_BIG(MICROSECOND, CONVERT(datetime2(6), '1970-01-01T00:00:00', 126), received), severity, facility, hostname, source, procid, msgid, structured_data, message, protocol, peer FROM dbo.Logs WHERE severity <= @P1 AND rv > CONVERT(binary(8), @P2) AND rv <= CONVERT(binary(8), @P3) AND rv < MIN_ACTIVE_ROWVERSION() ORDER BY rv ASC
-- params: [Int(4), Int(41), Int(99)]
