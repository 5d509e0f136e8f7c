--- A custom conflict resolver actor decides how a sync view's conflicting write ends (the built-in merge_nonnull).
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local pgview = require("pgview")
local pg = pgview.start_postgres()
if not pg then return end
pg:sql([[CREATE TABLE items (id bigint PRIMARY KEY, title text, qty integer);
         INSERT INTO items SELECT g, 'item ' || g, g FROM generate_series(1, 5) g]])

local a = node.start("resolver", {
  retry = { initial_ms = 100, max_ms = 500, jitter = 0.1 },
  remotes = { { name = "pg", kind = "postgres", conninfo = pg:conninfo(), heartbeat_ms = 1000 } },
  views = { { namespace = "pg", name = "items", persistence = "sync", remote = "pg", source = "public.items",
              conflict = "custom", conflict_resolver = "merge_nonnull" } } })

local function view() return pgview.status(a, "pg.items") end
local function drained() return pgview.drained(a, "pg.items") end
local function local_row(id)
  for _, r in ipairs(a:rows("pg.items")) do
    if r.id == id then return r end
  end
end
local function remote(sql) local r = pg:sql(sql).rows[1]; return r and r[1] end

step("the resolver merges a local write with the upstream change it met", function()
  await(function() local v = view(); return v.state == "running" and v.streaming end, 20000, "the view follows its stream")
  a:stop("pg.items")
  -- Locally: a new title, qty cleared. Upstream meanwhile: a new qty.
  a:exec("pg.items", { upsert = { { id = 1, title = "local title" } } })
  pg:sql("UPDATE items SET qty = 50 WHERE id = 1")
  a:resume("pg.items")
  await(drained, 20000, "the write settled")
  check_equal(view().outbox.conflicted, 1, "it is a recorded conflict")
  check_equal(remote("SELECT title || '/' || qty FROM items WHERE id = 1"), "local title/50",
              "PostgreSQL holds the merge: the local title, the upstream qty")
  local r = local_row(1)
  check(r.title == "local title" and r.qty == 50, "and so does the local copy", r.qty)
  local rec = a:conflicts("pg.items")[1]
  check(rec.winner == "merged" and rec.merged.qty == 50 and rec.remote.title == "item 1"
        and rec["local"].title == "local title", "ctl conflicts keeps both versions and the merge")
end)

step("a delete against an upstream update: merge_nonnull lets the delete win", function()
  a:stop("pg.items")
  a:exec("pg.items", { delete = { { id = 2 } } })
  pg:sql("UPDATE items SET title = 'changed upstream' WHERE id = 2")
  a:resume("pg.items")
  await(drained, 20000, "the write settled")
  check_equal(view().outbox.conflicted, 2, "a second recorded conflict")
  check_equal(remote("SELECT count(*) FROM items WHERE id = 2"), "0", "the row is gone upstream")
  check(local_row(2) == nil, "and locally")
end)

a:shutdown()
