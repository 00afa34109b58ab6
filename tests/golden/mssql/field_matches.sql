SELECT id, time_us, DATEDIFF_BIG(MICROSECOND, CONVERT(datetime2(6), '1970-01-01T00:00:00', 126), received), severity, facility, hostname, source, procid, msgid, structured_data, message, protocol, peer FROM dbo.Logs WHERE msgid = @P1 AND (CASE WHEN hostname = @P2 THEN 1 ELSE 0 END) = 0 AND facility = @P3 ORDER BY time_us ASC, id ASC
-- params: [Text("ID47"), Text("web1"), Int(19)]
