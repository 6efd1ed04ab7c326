-- lz4 instead of pglz for log chunks: measured on 22.9 MB of output, pglz cost ~1.1 s of
-- Postgres CPU to insert and lz4 ~0.16 s (bench/FINDINGS.md #7). Applies to rows written from
-- now on; existing chunks stay readable as they are.
ALTER TABLE logs ALTER COLUMN chunk SET COMPRESSION lz4;
