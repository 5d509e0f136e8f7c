--- A long queue of distinct writes goes to PostgreSQL as set-based statements (COPY for a batch of only inserts), batch after batch; a conflict in a batch falls back to one write at a time for that batch.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local pgview = require("pgview")
local pg = pgview.start_postgres()
if not pg then return end
pg:sql([[CREATE TABLE items (id bigint PRIMARY KEY, title text, qty integer CHECK (qty >= 0), note json,
                             price numeric(10,2), seen timestamptz);
         INSERT INTO items SELECT g, 'item ' || g, g, ('{"g": ' || g || '}')::json, g * 1.5,
                                  '2026-01-01 00:00:00+00'::timestamptz + g * interval '1 minute'
           FROM generate_series(1, 200) g]])

local cfg = {
  retry = { initial_ms = 100, max_ms = 500, jitter = 0.1 },
  remotes = { { name = "pg", kind = "postgres", conninfo = pg:conninfo(), heartbeat_ms = 1000 } },
  views = { { namespace = "pg", name = "items", persistence = "sync", remote = "pg", source = "public.items" } } }

local function view(n) return pgview.status(n, "pg.items") end
local function drained(n) return pgview.drained(n, "pg.items") end
local function local_rows(n)
  local out = {}
  for _, r in ipairs(n:rows("pg.items")) do
    out[#out + 1] = string.format("%d|%s|%s|%s", r.id, tostring(r.title), tostring(r.qty), tostring(r.price))
  end
  table.sort(out)
  return table.concat(out, "\n")
end
local function remote_rows()
  local out = {}
  for _, r in ipairs(pg:sql([[SELECT id::text || '|' || coalesce(title, 'nil') || '|' || coalesce(qty::text, 'nil')
                                     || '|' || coalesce(price::text, 'nil') FROM items]]).rows) do
    out[#out + 1] = r[1]
  end
  table.sort(out)
  return table.concat(out, "\n")
end
local function bulk_pushes(n) return n:remote_stats("pg").bulk_pushes end

local a = node.start("bulk", cfg)

step("a queue of distinct inserts, updates and deletes drains as set-based statements", function()
  await(function() local v = view(a); return v.state == "running" and v.streaming end, 20000, "the view follows its stream")
  a:stop("pg.items")
  local rows = {}
  for i = 201, 500 do
    -- Quotes, backslashes, braces and NULLs must survive the text arrays.
    local title = 'new "' .. i .. '" \\ {x,y}'
    if i % 7 == 0 then title = nil end
    rows[#rows + 1] = { id = i, title = title, qty = i, note = '{"n": ' .. i .. '}', price = tostring(i) .. ".25" }
  end
  a:exec("pg.items", { upsert = rows })
  local updates = {}
  for i = 1, 100 do updates[#updates + 1] = { id = i, title = "updated " .. i, qty = i + 1000, note = '{"u": 1}' } end
  a:exec("pg.items", { upsert = updates })
  local deletes = {}
  for i = 151, 200 do deletes[#deletes + 1] = { id = i } end
  a:exec("pg.items", { delete = deletes })
  check_equal(view(a).outbox.pending, 450, "the writes wait while the view is stopped")
  local before = bulk_pushes(a)
  a:resume("pg.items")
  await(function() return drained(a) end, 30000, "the queue drained after resume")
  check(bulk_pushes(a) > before, "they went by the set-based path", bulk_pushes(a) - before)
  local v = view(a)
  check(v.outbox.conflicted == 0 and v.outbox.failed == 0, "no write conflicted or failed", v.outbox.conflicted)
  check_equal(pg:sql("SELECT count(*) FROM items").rows[1][1], "450", "200 - 50 deleted + 300 inserted")
  check_equal(pg:sql("SELECT title FROM items WHERE id = 202").rows[1][1], 'new "202" \\ {x,y}', "text survives quoting")
  check_equal(pg:sql("SELECT coalesce(title, '<null>') FROM items WHERE id = 203").rows[1][1], "<null>", "NULL stays NULL")
  check_equal(pg:sql("SELECT note::text FROM items WHERE id = 5").rows[1][1], '{"u": 1}', "json written")
  await(function() return local_rows(a) == remote_rows() end, 10000, "both sides hold the same rows")
end)

step("a conflict in a batch falls back to one write at a time, and only that write loses", function()
  a:stop("pg.items")
  local updates = {}
  for i = 1, 10 do updates[#updates + 1] = { id = i, title = "second " .. i, qty = i } end
  a:exec("pg.items", { upsert = updates })
  -- Upstream changes row 5 meanwhile: the local write of row 5 is based on an older row.
  pg:sql("UPDATE items SET title = 'changed upstream' WHERE id = 5")
  local before = bulk_pushes(a)
  a:resume("pg.items")
  await(function() return drained(a) end, 30000, "the queue drained")
  check_equal(bulk_pushes(a), before, "the batch did not go by the set-based path")
  local v = view(a)
  check_equal(v.outbox.conflicted, 1, "one write conflicted")
  check_equal(pg:sql("SELECT title FROM items WHERE id = 5").rows[1][1], "changed upstream", "remote-wins kept the upstream row")
  check_equal(pg:sql("SELECT count(*) FROM items WHERE id <= 10 AND title LIKE 'second %'").rows[1][1], "9",
              "the other nine writes were applied")
  check_equal(pg:sql("SELECT sum(last_seq - first_seq + 1) FROM syncmesh.pushes WHERE view = 'pg.items'").rows[1][1],
              tostring(450 + 9), "every applied write was recorded once")
  await(function() return local_rows(a) == remote_rows() end, 10000, "both sides hold the same rows")
end)

step("a queue longer than a batch drains batch after batch, and a conflict in one sends that batch write by write", function()
  a:stop("pg.items")
  local o = view(a).outbox
  local applied, conflicted = o.applied, o.conflicted
  local rows = {}
  for i = 1001, 10000 do
    -- Tabs, newlines and backslashes must survive COPY's text format.
    rows[#rows + 1] = { id = i, title = "long\tqueue\n" .. i .. " \\", qty = i }
    if #rows == 1000 then
      a:exec("pg.items", { upsert = rows })
      rows = {}
    end
  end
  -- Row 7000 (in the second batch of 4,096) appears upstream meanwhile: that insert conflicts.
  pg:sql("INSERT INTO items (id, title, qty) VALUES (7000, 'upstream', 1)")
  local before = bulk_pushes(a)
  a:resume("pg.items")
  await(function() return drained(a) end, 60000, "the queue drained")
  check_equal(bulk_pushes(a) - before, 2, "the first and third batches went by the set-based path")
  local v = view(a)
  check_equal(v.outbox.conflicted, conflicted + 1, "one write conflicted")
  check_equal(v.outbox.applied, applied + 8999, "every other write was applied")
  check_equal(pg:sql("SELECT count(*) FROM items WHERE id > 1000").rows[1][1], "9000", "9,000 rows upstream")
  check_equal(pg:sql("SELECT title FROM items WHERE id = 7000").rows[1][1], "upstream", "remote-wins kept the upstream row")
  check_equal(pg:sql("SELECT title FROM items WHERE id = 1001").rows[1][1], "long\tqueue\n1001 \\", "text survives COPY")
  check_equal(pg:sql("SELECT sum(last_seq - first_seq + 1) FROM syncmesh.pushes WHERE view = 'pg.items'").rows[1][1],
              tostring(450 + 9 + 8999), "every applied write was recorded once")
  await(function() return local_rows(a) == remote_rows() end, 10000, "both sides hold the same rows")
end)

a:shutdown()
