-- 1.0.0: the catalog.
CREATE TABLE categories (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(64) NOT NULL);
CREATE TABLE products (id INT PRIMARY KEY AUTO_INCREMENT, sku VARCHAR(32) NOT NULL UNIQUE, name VARCHAR(128) NOT NULL, category_id INT NOT NULL);
CREATE TABLE product_index (product_id INT NOT NULL, category_name VARCHAR(64) NOT NULL, product_name VARCHAR(128) NOT NULL);
INSERT INTO categories (name) VALUES ('Tea'), ('Coffee');
INSERT INTO products (sku, name, category_id) VALUES ('T-1', ' Green tea ', 1), ('T-2', 'Black tea', 1), ('C-1', 'Espresso', 2);
