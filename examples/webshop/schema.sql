-- The ERP side of the webshop example: customers and sales orders with
-- their lines. syncfleet adds its triggers and log table next to these.
CREATE TABLE IF NOT EXISTS customers (
  id           INTEGER PRIMARY KEY,
  name         TEXT NOT NULL,
  email        TEXT,
  street       TEXT,
  city         TEXT,
  credit_limit REAL
);
CREATE TABLE IF NOT EXISTS sales_orders (
  id          INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(id),
  order_date  TEXT NOT NULL,
  status      TEXT NOT NULL DEFAULT 'open'
);
CREATE TABLE IF NOT EXISTS sales_lines (
  id       INTEGER PRIMARY KEY,
  order_id INTEGER NOT NULL REFERENCES sales_orders(id),
  item     TEXT NOT NULL,
  qty      REAL NOT NULL,
  price    REAL
);
