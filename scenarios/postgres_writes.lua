--- Sync views of a PostgreSQL table: local writes pushed once each, offline queues that drain, conflicts recorded.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local pgview = require("pgview")
local pg = pgview.start_postgres()
if not pg then return end
-- applies logs every row an INSERT or UPDATE wrote, so a write applied twice shows.
pg:sql([[CREATE TABLE items (id bigint PRIMARY KEY, title text, qty integer CHECK (qty >= 0));
         INSERT INTO items SELECT g, 'item ' || g, g FROM generate_series(1, 20) g;
         INSERT INTO items SELECT g, 'item ' || g, g FROM generate_series(30, 34) g;
         CREATE TABLE applies (n bigserial PRIMARY KEY, id bigint, title text);
         CREATE FUNCTION log_apply() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN INSERT INTO applies (id, title) VALUES (NEW.id, NEW.title); RETURN NEW; END $$;
         CREATE TRIGGER log_apply AFTER INSERT OR UPDATE ON items
           FOR EACH ROW EXECUTE FUNCTION log_apply()]])
say("Started a throwaway PostgreSQL with table items (20 rows).")

local function config(extra)
  local cfg = {
    retry = { initial_ms = 100, max_ms = 500, jitter = 0.1 },
    remotes = { { name = "pg", kind = "postgres", conninfo = pg:conninfo(), heartbeat_ms = 1000 } },
    views = {
      { namespace = "pg", name = "items", persistence = "sync", remote = "pg", source = "public.items" },
      -- The same table, read only: it sees the sync view's pushes, which are
      -- not its own echoes.
      { namespace = "pg", name = "mirror", persistence = "realtime", remote = "pg", source = "public.items" } } }
  for k, v in pairs(extra or {}) do cfg.remotes[1][k] = v end
  return cfg
end

local function view(n, name) return pgview.status(n, name or "pg.items") end
local function ready(n) return pgview.ready(n, "pg.items") end
local function drained(n) return pgview.drained(n, "pg.items") end
-- "id=title/qty" of every row, in id order: the local view's and the table's.
local function local_rows(n)
  local out = {}
  for _, r in ipairs(n:rows("pg.items")) do
    out[#out + 1] = string.format("%d=%s/%s", r.id, r.title or "", r.qty and tostring(r.qty) or "")
  end
  table.sort(out)
  return table.concat(out, " ")
end
local function remote_rows()
  local out = {}
  for _, r in ipairs(pg:sql("SELECT id::text || '=' || coalesce(title, '') || '/' || coalesce(qty::text, '') FROM items").rows) do
    out[#out + 1] = r[1]
  end
  table.sort(out)
  return table.concat(out, " ")
end
local function remote_title(id)
  local rows = pg:sql("SELECT title FROM items WHERE id = " .. id).rows
  return rows[1] and rows[1][1]
end
local function local_row(n, id)
  for _, r in ipairs(n:rows("pg.items")) do
    if r.id == id then return r end
  end
end
local function scalar(sql) return pg:sql(sql).rows[1][1] end
-- Awaits equal rows on `n` and upstream; says which differ if they do not get there.
local function same_rows(n, what)
  if not pcall(await, function() return local_rows(n) == remote_rows() end, 10000, what) then
    check_equal(local_rows(n), remote_rows(), what)
  end
end

local a = node.start("pgw_a", config())

step("local writes reach PostgreSQL by themselves", function()
  await(function() return ready(a) end, 20000, "the sync view bootstrapped and follows its stream")
  local runs = view(a).runs
  a:exec("pg.items", { upsert = { { id = 100, title = "new", qty = 1 }, { id = 1, title = "changed", qty = 11 } } })
  a:exec("pg.items", { delete = { { id = 2 } } })
  await(function() return remote_title(100) == "new" and remote_title(1) == "changed" and remote_title(2) == nil end,
        10000, "an insert, an update and a delete reached PostgreSQL without a sync call")
  await(function() return drained(a) end, 10000, "their outbox entries are applied and no row is staged")
  local ob = view(a).outbox
  check(ob.applied == 3 and ob.failed == 0 and ob.conflicted == 0, "three applied, none failed or conflicted",
        ob.applied .. " applied")
  check_equal(scalar("SELECT sum(last_seq - first_seq + 1)::text FROM syncmesh.pushes WHERE node = 'pgw_a'"), "3",
              "each write is recorded upstream once")
  pg:sql("UPDATE items SET title = 'upstream' WHERE id = 3")
  await(function() local r = local_row(a, 3); return r and r.title == "upstream" end, 10000,
        "the stream still brings upstream changes")
  check(view(a).runs == runs and ready(a), "the view's own echoes needed no new copy")
  same_rows(a, "both sides hold the same rows")
  await(function() return a:digest("pg.mirror") == a:digest("pg.items") end, 10000,
        "a realtime view of the same table on the same node saw the pushed writes")
end)

step("offline writes queue, survive a restart and drain in order", function()
  pg:stop()
  for i = 1, 5 do
    a:exec("pg.items", { upsert = { { id = 10, title = "offline " .. i, qty = i } } })
  end
  a:exec("pg.items", { upsert = { { id = 200, title = "made offline", qty = 0 } } })
  a:exec("pg.items", { delete = { { id = 4 } } })
  check(local_row(a, 10).title == "offline 5" and local_row(a, 4) == nil, "writes succeed locally while PostgreSQL is down")
  check(view(a).outbox.pending == 7, "and wait in the outbox", view(a).outbox.pending)
  a:restart()
  local v = view(a)
  check(v.outbox.pending == 7 and v.outbox.staged_rows == 3 and v.outbox.oldest_pending_age_ms ~= nil,
        "the queue survived the restart, its rows still staged", v.outbox.pending)
  check(local_row(a, 200).title == "made offline", "with the local rows")
  pg:start()
  await(function() return drained(a) end, 30000, "after PostgreSQL is back the queue drains on its own")
  check_equal(remote_title(10), "offline 5", "in order: the last write of a row wins")
  check_equal(scalar("SELECT string_agg(title, ',' ORDER BY n) FROM applies WHERE id = 10"),
              "offline 1,offline 2,offline 3,offline 4,offline 5", "each write applied once, in order")
  same_rows(a, "both sides hold the same rows")
end)

step("a write PostgreSQL refuses ends failed and the queue goes on", function()
  a:exec("pg.items", { upsert = { { id = 5, title = "negative", qty = -1 }, { id = 201, title = "behind it", qty = 2 } } })
  await(function() return drained(a) end, 10000, "the queue drained past the refused write")
  check_equal(remote_title(201), "behind it", "the write behind it was applied")
  check(view(a).outbox.failed == 1, "the refused write is failed")
  local conflicts = a:conflicts("pg.items")
  local last = conflicts[#conflicts]
  check(last.state == "failed" and string.find(last.error, "check constraint", 1, true) ~= nil,
        "ctl conflicts shows it with PostgreSQL's message", last.error)
  check_equal(local_row(a, 5).qty, 5, "the local row is the remote's again")
  same_rows(a, "both sides hold the same rows")
end)

local b = node.start("pgw_b", config())

-- Both nodes write while PostgreSQL is down; `first` drains before
-- `second` is let go, so `first` wins and `second` records a conflict.
local function race(first, second, write_first, write_second)
  await(function() return ready(first) and ready(second) and drained(first) and drained(second) end, 20000,
        "both nodes are caught up")
  pg:stop()
  write_first()
  write_second()
  second:stop("pg.items")
  pg:start()
  await(function() return drained(first) end, 30000, "the first to reconnect drained its queue")
  local before = view(second).outbox.conflicted
  second:resume("pg.items")
  await(function() return drained(second) end, 30000, "the second drained its queue")
  check(view(second).outbox.conflicted == before + 1, "the second recorded a conflict")
  same_rows(first, "the first node holds the winner's rows")
  same_rows(second, "the second node ends with the winner's rows")
end

step("two nodes update the same row offline: the first to reconnect wins", function()
  race(a, b,
       function() a:exec("pg.items", { upsert = { { id = 6, title = "from a", qty = 6 } } }) end,
       function() b:exec("pg.items", { upsert = { { id = 6, title = "from b", qty = 6 } } }) end)
  check_equal(remote_title(6), "from a", "remote-wins: the first write stands")
  local c = b:conflicts("pg.items")
  c = c[#c]
  check(c.state == "conflicted" and c["local"].title == "from b" and c.remote.title == "from a"
        and c.base.title == "item 6" and c.winner == "remote", "the conflict record keeps both versions")
end)

step("offline delete against offline update, both orders", function()
  race(a, b,
       function() a:exec("pg.items", { delete = { { id = 7 } } }) end,
       function() b:exec("pg.items", { upsert = { { id = 7, title = "b updates", qty = 7 } } }) end)
  check(remote_title(7) == nil and local_row(b, 7) == nil, "the delete came first: the row is gone everywhere")
  race(a, b,
       function() a:exec("pg.items", { upsert = { { id = 8, title = "a updates", qty = 8 } } }) end,
       function() b:exec("pg.items", { delete = { { id = 8 } } }) end)
  check(remote_title(8) == "a updates" and local_row(b, 8).title == "a updates",
        "the update came first: the delete lost and the row is back")
end)
b:shutdown()

step("a write to a realtime view is refused", function()
  local ok, err = pcall(function() a:exec("pg.mirror", { upsert = { { id = 300, title = "x", qty = 1 } } }) end)
  check(not ok and string.find(tostring(err), "takes no local writes", 1, true) ~= nil,
        "with a sentence saying so", tostring(err))
end)
a:forget("pg.items")  -- its slot goes: the node comes back below as if new
a:forget("pg.mirror")
a:shutdown()

step("a node whose data directory was made afresh pushes its writes", function()
  -- Same node id, new directory: its outbox seqs start at 1 again, and the
  -- runs pgw_a recorded upstream must not pass its writes off as taken.
  local cfg = config()
  cfg.node_id = "pgw_a"
  local again = node.start("pgw_a_afresh", cfg)
  await(function() return ready(again) end, 20000, "the sync view bootstrapped")
  again:exec("pg.items", { upsert = { { id = 400, title = "afresh", qty = 4 } } })
  await(function() return drained(again) end, 10000, "the write settled")
  check_equal(remote_title(400), "afresh", "it reached PostgreSQL")
  again:shutdown()
end)

step("upstream and local writes to the same rows interleave and converge", function()
  -- local-wins forces every local write: an upstream change committed just
  -- before a push reaches the view after the local write, and must not
  -- overwrite it (the push's own echo, which would repair it, is dropped).
  local cfg = config()
  cfg.views[1].conflict = "local-wins"
  local l = node.start("pgw_l", cfg)
  await(function() return ready(l) end, 20000, "the local-wins view is ready")
  for i = 1, 60 do
    local id = random(30, 34)
    if random(0, 1) == 0 then
      pg:sql(string.format("UPDATE items SET title = 'up %d', qty = %d WHERE id = %d", i, i, id))
    else
      l:exec("pg.items", { upsert = { { id = id, title = "local " .. i, qty = i } } })
    end
  end
  await(function() return drained(l) end, 20000, "the local writes drained")
  same_rows(l, "the view and the table hold the same rows")
  l:shutdown()
end)

step("killed between the upstream commit and the local acknowledgement", function()
  local k = node.start("pgw_k", config({ failpoint_push_committed = 0.5 }))
  await(function() return ready(k) end, 20000, "the sync view is ready")
  local kills, writes, acknowledged = 0, 0, {}
  while kills < 20 and writes < 200 do
    writes = writes + 1
    local id = 1000 + writes
    if k:exec("pg.items", { upsert = { { id = id, title = "k" .. writes, qty = writes } } }, 5000) then
      acknowledged[#acknowledged + 1] = id
    end
    await(function()
      if not k:running() then return true end
      local vs = k:status("pg.items", 5000)
      return vs == nil or vs[1].outbox.pending == 0
    end, 20000, "write " .. writes .. " was pushed or the node died")
    if not k:running() then
      kills = kills + 1
      k:restart()
    end
  end
  check(kills >= 20, "the node died between commit and acknowledgement at least 20 times", kills .. " kills in " .. writes .. " writes")
  await(function() local vs = k:status("pg.items", 5000); return vs ~= nil and vs[1].outbox.pending == 0 end, 30000,
        "after the last restart the queue drained")
  check_equal(scalar("SELECT count(*)::text FROM (SELECT title FROM applies WHERE title LIKE 'k%' GROUP BY title HAVING count(*) > 1) t"),
              "0", "no write was applied twice")
  -- A write pushed again after a kill is known as taken (syncmesh.pushes),
  -- not mistaken for a conflict with its own first push.
  local ob = k:status("pg.items", 5000)[1].outbox
  check(ob.conflicted == 0 and ob.failed == 0, "every write retried after a kill ended applied",
        ob.conflicted .. " conflicted, " .. ob.failed .. " failed")
  check_equal(scalar("SELECT sum(last_seq - first_seq + 1)::text FROM syncmesh.pushes WHERE node = 'pgw_k'"),
              scalar("SELECT count(*)::text FROM applies WHERE title LIKE 'k%'"), "one record per applied write")
  local missing = {}
  for _, id in ipairs(acknowledged) do
    if remote_title(id) == nil then missing[#missing + 1] = id end
  end
  check(#missing == 0, "no acknowledged write was lost", table.concat(missing, ","))
  same_rows(k, "both sides hold the same rows")
  figure("kills", kills)
  figure("writes", writes)
  k:shutdown()
end)
