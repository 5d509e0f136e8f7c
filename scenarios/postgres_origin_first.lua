--- origin_first sync views: PostgreSQL takes each write before the local copy does; offline writes are refused or queued.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local pgview = require("pgview")
local pg = pgview.start_postgres()
if not pg then return end
pg:sql([[CREATE TABLE items (id bigint PRIMARY KEY, title text, qty integer CHECK (qty >= 0));
         INSERT INTO items VALUES (1, 'one', 1), (2, 'two', 2);
         CREATE TABLE notes (id bigint PRIMARY KEY, title text)]])

local cfg = {
  retry = { initial_ms = 100, max_ms = 500, jitter = 0.1 },
  remotes = { { name = "pg", kind = "postgres", conninfo = pg:conninfo(), heartbeat_ms = 1000 } },
  views = {
    { namespace = "pg", name = "items", persistence = "sync", remote = "pg", source = "public.items",
      write_policy = "origin_first" },
    { namespace = "pg", name = "notes", persistence = "sync", remote = "pg", source = "public.notes",
      write_policy = "origin_first", origin_first_offline = "local_first" } } }

local view, ready = pgview.status, pgview.ready
local function local_row(n, name, id)
  for _, r in ipairs(n:rows(name)) do
    if r.id == id then return r end
  end
end
local function remote(sql) local r = pg:sql(sql).rows[1]; return r and r[1] end

local a = node.start("origin_first", cfg)

step("a write is answered once PostgreSQL holds it, and the local copy holds it then too", function()
  for _, name in ipairs({ "pg.items", "pg.notes" }) do
    await(function() return ready(a, name) end, 20000, name .. " follows its stream")
  end
  check_equal(view(a, "pg.items").mode, "origin_first", "the view says how it writes")
  local r = a:exec("pg.items", { upsert = { { id = 3, title = "three", qty = 3 }, { id = 1, title = "uno", qty = 1 } } })
  check_equal(r.applied, 2, "both writes applied")
  -- No waiting here: the answer came after the remote's commit and the local batch.
  check_equal(remote("SELECT title FROM items WHERE id = 3"), "three", "PostgreSQL has the insert when the exec returns")
  check_equal(remote("SELECT title FROM items WHERE id = 1"), "uno", "and the update")
  check_equal(local_row(a, "pg.items", 3).title, "three", "the local copy has it when the exec returns")
  a:exec("pg.items", { delete = { { id = 2 } } })
  check_equal(remote("SELECT count(*) FROM items WHERE id = 2"), "0", "a delete reaches PostgreSQL before the answer")
  check(local_row(a, "pg.items", 2) == nil, "and leaves the local copy")
  local v = view(a, "pg.items")
  check(v.outbox.pending == 0 and v.outbox.staged_rows == 0 and v.outbox.applied == 3, "nothing left queued", v.outbox.applied)
end)

step("a write PostgreSQL refuses is an error, and the local copy never had it", function()
  local ok, err = a:exec("pg.items", { upsert = { { id = 4, title = "minus", qty = -1 } } }, 10000)
  check(ok == nil and string.find(err or "", "did not take 1 of 1", 1, true) ~= nil, "the exec fails", err)
  check(string.find(err or "", "check constraint", 1, true) ~= nil, "with PostgreSQL's reason", err)
  check(local_row(a, "pg.items", 4) == nil, "no local row appeared")
  check_equal(view(a, "pg.items").outbox.failed, 1, "the write is recorded as failed")
end)

step("with PostgreSQL down a write is refused before anything is written, or queued where configured", function()
  pg:stop()
  await(function() return view(a, "pg.items").state == "failed" end, 20000, "the view noticed PostgreSQL is down")
  local ok, err = a:exec("pg.items", { upsert = { { id = 5, title = "offline", qty = 5 } } }, 10000)
  check(ok == nil and string.find(err or "", "is down, so the write was not made", 1, true) ~= nil, "refused", err)
  check(string.find(err or "", "origin_first_offline", 1, true) ~= nil, "naming the setting that would queue it", err)
  check(local_row(a, "pg.items", 5) == nil and view(a, "pg.items").outbox.pending == 0, "nothing was written or queued")
  await(function() return view(a, "pg.notes").state == "failed" end, 20000, "pg.notes noticed too")
  local r = a:exec("pg.notes", { upsert = { { id = 1, title = "queued while down" } } })
  check_equal(r.queued, 1, "a view with origin_first_offline = local_first queues the write")
  check_equal(local_row(a, "pg.notes", 1).title, "queued while down", "and applies it locally at once")
  pg:start()
  await(function() return view(a, "pg.notes").outbox.pending == 0 end, 30000, "the queued write drained after PostgreSQL came back")
  check_equal(remote("SELECT title FROM notes WHERE id = 1"), "queued while down", "PostgreSQL has it")
  await(function() return ready(a, "pg.items") end, 20000, "pg.items follows its stream again")
  local back = a:exec("pg.items", { upsert = { { id = 5, title = "back", qty = 5 } } })
  check_equal(back.applied, 1, "writes go through again once PostgreSQL is back")
  check_equal(remote("SELECT title FROM items WHERE id = 5"), "back", "straight to PostgreSQL")
end)

a:shutdown()
