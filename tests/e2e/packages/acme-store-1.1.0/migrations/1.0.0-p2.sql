-- 1.0.0-p2 (security patch): names are stored trimmed.
UPDATE products SET name = TRIM(name);
