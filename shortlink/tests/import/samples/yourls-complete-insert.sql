-- mysqldump --complete-insert --skip-extended-insert, a YOURLS_DB_PREFIX of "short_"
INSERT INTO `short_url` (`keyword`, `url`, `title`, `timestamp`, `ip`, `clicks`) VALUES ('docs','https://example.com/docs','Docs \"quoted\"\ttab','2023-05-04 03:02:01','10.0.0.1',100);
INSERT INTO `short_url` (`keyword`, `url`, `title`, `timestamp`, `ip`, `clicks`) VALUES ('multi','https://example.com/multi','Two\nlines','2023-05-04 03:02:02','10.0.0.1',1);
INSERT INTO `short_url` (`keyword`, `url`, `title`, `timestamp`, `ip`, `clicks`) VALUES ('short','https://example.com/short','Too few','2023-05-04 03:02:03');
