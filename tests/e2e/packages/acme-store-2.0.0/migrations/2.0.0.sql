-- 2.0.0: review text.
ALTER TABLE reviews ADD COLUMN body TEXT;
