--- Materialized views of PostgreSQL queries: COPY (SELECT …) keyed by named columns; a missing or wrong key is a sentence in status.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local pgview = require("pgview")
local pg = pgview.start_postgres()
if not pg then return end
pg:sql([[CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(10,2));
         INSERT INTO orders SELECT g, 'c' || (g % 5), g * 2.5 FROM generate_series(1, 100) g]])
say("Started a throwaway PostgreSQL with table orders (100 rows, 5 customers).")

local function qview(name, query, key)
  return { namespace = "q", name = name, persistence = "materialized", remote = "pg",
           query = query, key = key }
end

local n = node.start("pgqueries", {
  retry = { initial_ms = 200, max_ms = 2000, jitter = 0.1 },
  remotes = { { name = "pg", kind = "postgres", conninfo = pg:conninfo() },
              { name = "mem", kind = "memory",
                tables = { { name = "t", columns = { { name = "id", type = "integer", key = true } },
                             rows = { { 1 } } } } } },
  views = {
    qview("totals", "SELECT customer, count(*) AS orders, sum(amount) AS total FROM orders GROUP BY customer",
          { "customer" }),
    qview("nokey", "SELECT id FROM orders"),
    qview("badkey", "SELECT id, amount FROM orders", { "order_id" }),
    qview("dupes", "SELECT customer, amount FROM orders", { "customer" }),
    qview("writes", "INSERT INTO orders VALUES (999, 'x', 1) RETURNING id", { "id" }),
    qview("broken", "SELECT nope FROM orders", { "nope" }),
    { namespace = "mem", name = "ok", persistence = "materialized", remote = "mem", source = "t" } } })

local function result_of(results, view)
  for _, r in ipairs(results) do
    if r.view == view then return r end
  end
end
local function totals_in_source()
  local out = {}
  for _, r in ipairs(pg:sql("SELECT customer, count(*), sum(amount) FROM orders GROUP BY customer").rows) do
    out[r[1]] = r[2] .. "|" .. r[3]
  end
  return out
end
local function same_totals()
  local want, k = totals_in_source(), 0
  for _, r in ipairs(n:rows("q.totals")) do
    if want[r.customer] ~= (tostring(r.orders) .. "|" .. r.total) then return false end
    k = k + 1
  end
  local expected = 0
  for _ in pairs(want) do expected = expected + 1 end
  return k == expected
end

step("materialize a query", function()
  local r = n:sync("q.totals")[1]
  check(r.state == "synced", "sync() on a query view reports synced", r.error)
  check(#n:query("q.totals").rows == 5, "the query's 5 result rows are held")
  check(same_totals(), "keyed by customer, each row equals the query's result")
  pg:sql("INSERT INTO orders VALUES (101, 'c9', 1000)")
  pg:sql("UPDATE orders SET amount = amount + 1 WHERE customer = 'c1'")
  n:sync("q.totals")
  check(#n:query("q.totals").rows == 6 and same_totals(), "the next sync replaces the copy with the query's new result")
end)

step("bad queries and keys are sentences in status", function()
  local results = n:sync("*")
  local function fails(view, says, what)
    local r = result_of(results, view)
    check(r ~= nil and r.state == "failed" and string.find(r.error or "", says, 1, true) ~= nil,
          what, r and r.error)
    local s = n:status(view)[1]
    check(s.state == "failed" and string.find(s.last_error or "", says, 1, true) ~= nil,
          "status says it too: " .. view, s.last_error)
  end
  fails("q.nokey", "name the columns of its result that identify its rows", "a query without a key fails and says to name one")
  fails("q.badkey", "key column 'order_id' is not among the query's result columns (id, amount)",
        "a key not in the result fails naming the key and the result's columns")
  fails("q.dupes", "two rows with key", "a key that does not identify the rows fails")
  fails("q.writes", "read-only", "a query that writes is refused")
  check_equal(pg:sql("SELECT count(*) FROM orders WHERE id = 999").rows[1][1], "0", "and wrote nothing")
  fails("q.broken", "nope", "a query PostgreSQL refuses fails with PostgreSQL's sentence")
  check(result_of(results, "q.totals").state == "synced", "the good query view is unaffected")
  check(result_of(results, "mem.ok").state == "synced", "other remotes' views are unaffected")
  check(n:running(), "the node keeps running")
end)
