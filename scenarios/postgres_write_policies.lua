--- Sync views of PostgreSQL: each conflict policy, a blocking queue, an INSERT of a key taken upstream, the origin privilege sentence.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local pgview = require("pgview")
local pg = pgview.start_postgres()
if not pg then return end
pg:sql([[CREATE TABLE items (id bigint PRIMARY KEY, title text, qty integer CHECK (qty >= 0));
         INSERT INTO items SELECT g, 'item ' || g, g FROM generate_series(1, 10) g;
         CREATE TABLE events (id bigint PRIMARY KEY, title text, at timestamptz);
         INSERT INTO events VALUES (1, 'one', '2025-01-01 00:00:00+00'), (2, 'two', '2025-01-01 00:00:00+00')]])
say("Started a throwaway PostgreSQL with tables items (10 rows) and events (2 rows).")

local function config(view, conninfo)
  view.namespace, view.name, view.persistence, view.remote = "pg", "v", "sync", "pg"
  return { retry = { initial_ms = 100, max_ms = 500, jitter = 0.1 },
           remotes = { { name = "pg", kind = "postgres", conninfo = conninfo or pg:conninfo(), heartbeat_ms = 1000 } },
           views = { view } }
end
local function view(n) return pgview.status(n, "pg.v") end
local function ready(n) return pgview.ready(n, "pg.v") end
local function drained(n) return pgview.drained(n, "pg.v") end
local function local_row(n, id)
  for _, r in ipairs(n:rows("pg.v")) do
    if r.id == id then return r end
  end
end
local function remote_title(tbl, id)
  local rows = pg:sql("SELECT title FROM " .. tbl .. " WHERE id = " .. id).rows
  return rows[1] and rows[1][1]
end
local function last_conflict(n)
  local c = n:conflicts("pg.v")
  return c[#c]
end
-- Writes `write` while the view is stopped and `upstream` ran, then lets the view push.
local function conflicting(n, upstream, write)
  await(function() return ready(n) and drained(n) end, 20000, "the view is caught up")
  n:stop("pg.v")
  pg:sql(upstream)
  n:exec("pg.v", write)
  n:resume("pg.v")
  await(function() return drained(n) end, 20000, "the write was pushed")
end

step("local-wins forces the write and still records the conflict", function()
  local n = node.start("pol_local", config({ source = "public.items", conflict = "local-wins" }))
  conflicting(n, "UPDATE items SET title = 'remote' WHERE id = 1", { upsert = { { id = 1, title = "local", qty = 1 } } })
  check_equal(remote_title("items", 1), "local", "the local write replaced the upstream change")
  local c = last_conflict(n)
  check(c.state == "conflicted" and c.winner == "local" and c.remote.title == "remote", "the conflict is recorded", c.winner)
  check(view(n).outbox.conflicted == 1, "the outbox entry ended conflicted")
  -- An INSERT of a key that exists upstream conflicts too.
  conflicting(n, "INSERT INTO items VALUES (50, 'theirs', 5)", { upsert = { { id = 50, title = "mine", qty = 5 } } })
  check_equal(remote_title("items", 50), "mine", "local-wins: the insert became an update")
  check(last_conflict(n).base == nil, "a conflicting insert had no base row")
  n:shutdown()
end)

step("remote-wins takes the upstream row for an insert of a key taken upstream", function()
  local n = node.start("pol_remote", config({ source = "public.items" }))
  conflicting(n, "INSERT INTO items VALUES (51, 'theirs', 5)", { upsert = { { id = 51, title = "mine", qty = 5 } } })
  check_equal(remote_title("items", 51), "theirs", "the upstream row stands")
  await(function() local r = local_row(n, 51); return r and r.title == "theirs" end, 10000, "and replaced the local one")
  check(last_conflict(n).winner == "remote", "the conflict says so")
  n:shutdown()
end)

step("lww: the newer timestamp wins either way", function()
  local n = node.start("pol_lww", config({ source = "public.events", conflict = "lww", lww_column = "at" }))
  await(function() return ready(n) end, 20000, "the lww view is ready")
  n:stop("pg.v")
  pg:sql([[UPDATE events SET title = 'remote newer', at = '2030-01-01 00:00:00+00' WHERE id = 1;
           UPDATE events SET title = 'remote older', at = '2026-01-01 00:00:00+00' WHERE id = 2]])
  n:exec("pg.v", { upsert = { { id = 1, title = "local older", at = "2027-01-01 00:00:00+00" },
                              { id = 2, title = "local newer", at = "2029-01-01 00:00:00+00" } } })
  n:resume("pg.v")
  await(function() return drained(n) end, 20000, "both writes were pushed")
  check_equal(remote_title("events", 1), "remote newer", "an older local write loses")
  check_equal(remote_title("events", 2), "local newer", "a newer local write wins")
  await(function() local r = local_row(n, 1); return r and r.title == "remote newer" end, 10000,
        "the losing local row took the upstream one")
  check(view(n).outbox.conflicted == 2, "both are recorded conflicts")
  n:shutdown()
end)

step("on_error = block holds the queue until the remote takes the write", function()
  local n = node.start("pol_block", config({ source = "public.items", on_error = "block" }))
  await(function() return ready(n) and drained(n) end, 20000, "the view is ready")
  n:exec("pg.v", { upsert = { { id = 2, title = "negative", qty = -2 }, { id = 60, title = "behind", qty = 1 } } })
  await(function() local v = view(n); return v.state == "failed" and string.find(v.last_error, "blocked", 1, true) ~= nil end,
        10000, "the view says its queue is blocked, and why")
  check(string.find(view(n).last_error, "check constraint", 1, true) ~= nil, "with PostgreSQL's message", view(n).last_error)
  check(view(n).outbox.pending == 2 and remote_title("items", 60) == nil, "nothing behind the refused write was pushed")
  pg:sql("ALTER TABLE items DROP CONSTRAINT items_qty_check")
  await(function() return drained(n) end, 20000, "once the remote takes it the queue drains by itself")
  check(remote_title("items", 2) == "negative" and remote_title("items", 60) == "behind", "in order")
  n:shutdown()
end)

step("a role without the replication origin functions is told what to grant", function()
  pg:sql([[CREATE ROLE writer LOGIN REPLICATION;
           GRANT CREATE ON DATABASE postgres TO writer;
           CREATE TABLE owned (id bigint PRIMARY KEY, title text);
           ALTER TABLE owned OWNER TO writer;
           GRANT USAGE ON SCHEMA syncmesh TO writer;
           GRANT SELECT, INSERT ON syncmesh.pushes TO writer]])
  local n = node.start("pol_role", config({ source = "public.owned" }, pg:conninfo() .. " user=writer"))
  await(function() return ready(n) end, 20000, "the view of the role's own table is ready")
  n:exec("pg.v", { upsert = { { id = 1, title = "x" } } })
  await(function() local v = view(n); return string.find(v.last_error or "", "GRANT EXECUTE", 1, true) ~= nil end, 10000,
        "the push fails with a sentence saying what to grant")
  say(view(n).last_error)
  pg:sql([[GRANT EXECUTE ON FUNCTION pg_replication_origin_oid(text), pg_replication_origin_create(text),
             pg_replication_origin_session_setup(text), pg_replication_origin_session_reset() TO writer]])
  await(function() return drained(n) end, 20000, "after the grant the write goes through by itself")
  check_equal(remote_title("owned", 1), "x", "and is upstream")
  n:shutdown()
end)
