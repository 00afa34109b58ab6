SELECT id, time_us, DATEDIFF_BIG(MICROSECOND, CONVERT(datetime2(6), '1970-01-01T00:00:00', 126), received), severity, facility, hostname, source, procid, msgid, structured_data, message, protocol, peer FROM dbo.Logs  ORDER BY time_us DESC, id DESC OFFSET 0 ROWS FETCH NEXT 100 ROWS ONLY
-- params: []
