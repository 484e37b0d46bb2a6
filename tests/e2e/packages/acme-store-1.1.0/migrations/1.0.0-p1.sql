-- 1.0.0-p1 (security patch): an index for name lookups.
CREATE INDEX products_name ON products (name);
