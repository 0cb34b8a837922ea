-- Changes the example makes while syncfleet runs: what an ERP user would
-- do in a few minutes of work.
INSERT INTO customers (id, name, email, street, city)
  VALUES (1, 'Ada Lovelace', 'ADA@Example.org', '12 Analytical Row', 'London'),
         (2, 'Grace Hopper', 'grace@example.org', '1 Cobol Way', 'Arlington'),
         (3, 'Edsger Dijkstra', 'ewd@example.org', 'Plataanstraat 5', 'Nuenen');
UPDATE customers SET city = 'Cambridge' WHERE id = 1;
-- not a mapped field: no export (check_used_fields)
UPDATE customers SET credit_limit = 5000 WHERE id = 2;
INSERT INTO sales_orders (id, customer_id, order_date) VALUES (100, 1, '2026-11-26');
INSERT INTO sales_lines (id, order_id, item, qty, price)
  VALUES (1000, 100, 'difference engine', 1, 17000),
         (1001, 100, 'punched cards', 500, 0.02);
UPDATE sales_lines SET qty = 750 WHERE id = 1001;
DELETE FROM customers WHERE id = 3;
