SELECT id, time_us, DATEDIFF_BIG(MICROSECOND, CONVERT(datetime2(6), '1970-01-01T00:00:00', 126), received), severity, facility, hostname, source, procid, msgid, structured_data, message, protocol, peer FROM dbo.Logs WHERE (source LIKE @P1 ESCAPE '\' OR source = @P2 OR source = @P3) ORDER BY time_us ASC, id ASC
-- params: [Text("web%"), Text("db_1"), Text("50%")]
