-- The source database of the docker-compose CDC pipeline: a user with the privileges
-- the MySQL source needs, and a small schema to replicate.
CREATE USER IF NOT EXISTS 'omconnect'@'%' IDENTIFIED WITH mysql_native_password BY 'omconnect';
GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT, LOCK TABLES
    ON *.* TO 'omconnect'@'%';
CREATE DATABASE IF NOT EXISTS inventory CHARACTER SET utf8mb4;
CREATE TABLE inventory.customers (
    id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(255) NOT NULL UNIQUE,
    name VARCHAR(100) NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
);
CREATE TABLE inventory.orders (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    customer_id INT UNSIGNED NOT NULL,
    total DECIMAL(12, 2) NOT NULL,
    status ENUM('new', 'paid', 'shipped') NOT NULL DEFAULT 'new',
    updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
);
INSERT INTO inventory.customers (email, name) VALUES
    ('ada@example.com', 'Ada'), ('linus@example.com', 'Linus'), ('zoë@example.com', 'Zoë');
INSERT INTO inventory.orders (customer_id, total, status) VALUES
    (1, 19.99, 'paid'), (2, 5.00, 'new'), (3, 120.50, 'shipped');
