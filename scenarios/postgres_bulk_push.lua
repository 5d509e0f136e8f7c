--- A long queue of distinct writes goes to PostgreSQL as set-based statements (COPY for a batch of only inserts), batch after batch, the next batch waiting at the remote behind the one at work; a conflict in a batch falls back to one write at a time for that batch, and a blocked write holds back the batches behind it.
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
  query_rows_max = 50000,  -- the rows of both sides are compared whole
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
  for i = 1001, 20000 do
    -- Tabs, newlines and backslashes must survive COPY's text format.
    rows[#rows + 1] = { id = i, title = "long\tqueue\n" .. i .. " \\", qty = i }
    if #rows == 1000 then
      a:exec("pg.items", { upsert = rows })
      rows = {}
    end
  end
  -- Row 12000 (in the second batch of 8,192) appears upstream meanwhile: that insert conflicts.
  pg:sql("INSERT INTO items (id, title, qty) VALUES (12000, 'upstream', 1)")
  local before = bulk_pushes(a)
  a:resume("pg.items")
  await(function() return drained(a) end, 60000, "the queue drained")
  check_equal(bulk_pushes(a) - before, 2, "the first and third batches went by the set-based path")
  local v = view(a)
  check_equal(v.outbox.conflicted, conflicted + 1, "one write conflicted")
  check_equal(v.outbox.applied, applied + 18999, "every other write was applied")
  check_equal(pg:sql("SELECT count(*) FROM items WHERE id > 1000").rows[1][1], "19000", "19,000 rows upstream")
  check_equal(pg:sql("SELECT title FROM items WHERE id = 12000").rows[1][1], "upstream", "remote-wins kept the upstream row")
  check_equal(pg:sql("SELECT title FROM items WHERE id = 1001").rows[1][1], "long\tqueue\n1001 \\", "text survives COPY")
  check_equal(pg:sql("SELECT sum(last_seq - first_seq + 1) FROM syncmesh.pushes WHERE view = 'pg.items'").rows[1][1],
              tostring(450 + 9 + 18999), "every applied write was recorded once")
  await(function() return local_rows(a) == remote_rows() end, 10000, "both sides hold the same rows")
end)

step("applied writes leave the outbox once it is quiet, and stay counted", function()
  await(function() local o = view(a).outbox; return o.pruned == o.applied end, 30000,
        "every applied entry was deleted from the outbox")
  check(view(a).outbox.applied >= 450 + 9 + 18999, "and counted applied", view(a).outbox.applied)
end)

step("after a restart the applied writes stay applied: counted, and not pushed again", function()
  local o = view(a).outbox
  local recorded = pg:sql("SELECT count(*) FROM syncmesh.pushes WHERE view = 'pg.items'").rows[1][1]
  a:restart()
  await(function() local v = view(a); return v.state == "running" and v.streaming and v.last_run ~= nil end, 20000,
        "the view follows its stream again")
  local v = view(a)
  check_equal(v.last_run.pushed, 0, "its first run pushed nothing")
  check_equal(v.outbox.pending, 0, "nothing is pending")
  check_equal(v.outbox.applied, o.applied, "the applied writes are counted as before")
  check_equal(v.outbox.pruned, o.pruned, "and the ones deleted from the outbox")
  check_equal(v.outbox.conflicted, o.conflicted, "and the conflicted ones")
  check_equal(pg:sql("SELECT count(*) FROM syncmesh.pushes WHERE view = 'pg.items'").rows[1][1], recorded,
              "no push went upstream")
end)

a:shutdown()

step("a batch behind one whose write is refused (on_error = block) is not pushed before it", function()
  pg:sql("CREATE TABLE held (id bigint PRIMARY KEY, qty integer CHECK (qty >= 0))")
  local b = node.start("bulk_block", {
    retry = { initial_ms = 100, max_ms = 500, jitter = 0.1 },
    remotes = { { name = "pg", kind = "postgres", conninfo = pg:conninfo(), heartbeat_ms = 1000 } },
    views = { { namespace = "pg", name = "held", persistence = "sync", remote = "pg", source = "public.held",
                on_error = "block" } } })
  local function held() return pgview.status(b, "pg.held") end
  await(function() local v = held(); return v.state == "running" and v.streaming end, 20000, "the view follows its stream")
  b:stop("pg.held")
  -- 10,000 writes: batches of 8,192, the second sent while the first is at
  -- work; write 100 of the first breaks the CHECK.
  local rows = {}
  for i = 1, 10000 do
    rows[#rows + 1] = { id = i, qty = i == 100 and -1 or i }
    if #rows == 1000 then
      b:exec("pg.held", { upsert = rows })
      rows = {}
    end
  end
  b:resume("pg.held")
  await(function() local v = held(); return v.state == "failed" and string.find(v.last_error or "", "blocked", 1, true) ~= nil end,
        20000, "the queue is blocked at the refused write")
  check_equal(pg:sql("SELECT count(*) FROM held").rows[1][1], "99", "only the writes before it went upstream")
  check_equal(held().outbox.pending, 10000 - 99, "the rest wait, in order")
  pg:sql("ALTER TABLE held DROP CONSTRAINT held_qty_check")
  await(function() return pgview.drained(b, "pg.held") end, 60000, "once the remote takes it the queue drains by itself")
  check_equal(pg:sql("SELECT count(*) FROM held").rows[1][1], "10000", "every write went upstream")
  check_equal(pg:sql("SELECT qty FROM held WHERE id = 100").rows[1][1], "-1", "the refused one too, when it could")
  check_equal(pg:sql("SELECT sum(last_seq - first_seq + 1) FROM syncmesh.pushes WHERE view = 'pg.held'").rows[1][1],
              "10000", "each recorded once")
  check_equal(held().outbox.applied, 10000, "and counted applied once")
  b:shutdown()
end)
