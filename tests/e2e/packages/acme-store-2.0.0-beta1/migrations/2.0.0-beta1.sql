-- 2.0.0-beta1: reviews.
CREATE TABLE reviews (id INT PRIMARY KEY AUTO_INCREMENT, product_id INT NOT NULL, stars TINYINT NOT NULL);
