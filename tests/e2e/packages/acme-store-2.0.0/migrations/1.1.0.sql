-- 1.1.0: prices, in the catalog and in the index.
ALTER TABLE products ADD COLUMN price_cents INT NOT NULL DEFAULT 0;
UPDATE products SET price_cents = 450 WHERE sku = 'T-1';
UPDATE products SET price_cents = 390 WHERE sku = 'T-2';
UPDATE products SET price_cents = 250 WHERE sku = 'C-1';
ALTER TABLE product_index ADD COLUMN price_cents INT NOT NULL DEFAULT 0;
