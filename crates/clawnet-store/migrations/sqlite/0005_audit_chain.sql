-- The audit trail's hash chain (docs/decisions/0009-hash-chained-audit-writer.md):
-- each entry's hash covers the previous entry's hash and its own fields.
-- Entries written before this migration keep empty hashes.
ALTER TABLE audit ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN hash TEXT NOT NULL DEFAULT '';
