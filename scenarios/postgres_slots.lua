--- Replication slots kept healthy: heartbeats move an idle slot, wal_status in status, an invalidated slot re-snapshots by itself, forget drops slot and publication.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local pgview = require("pgview")
local nodeinfo = require("nodeinfo")

-- A slot may hold back at most 1 MB of WAL beyond the current segment: a
-- node that is away while the database writes loses its slot.
-- A prepared transaction can hold a streaming slot's restart_lsn back.
local pg = pgview.start_postgres{ settings = { max_slot_wal_keep_size = "1MB", max_prepared_transactions = "2" } }
if not pg then return end
pg:sql([[CREATE TABLE items (id bigint PRIMARY KEY, title text);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g;
         CREATE TABLE filler (id bigint, pad text)]])
say("Started a throwaway PostgreSQL (max_slot_wal_keep_size = 1MB) with table items (50 rows).")

local function config()
  return {
    retry = { initial_ms = 100, max_ms = 1000, jitter = 0.1 },
    remotes = { { name = "pg", kind = "postgres", conninfo = pg:conninfo(), heartbeat_ms = 200 } },
    views = { { namespace = "pg", name = "live", persistence = "realtime", remote = "pg",
                source = "public.items" } } }
end

local n = node.start("pgslots", config())
local function view()
  for _, v in ipairs(n:status("pg.live")) do return v end
end
local function count() return #n:query("pg.live").rows end
local function slot_value(slot, expr)
  local rows = pg:sql("SELECT " .. expr .. " FROM pg_replication_slots WHERE slot_name = '" .. slot .. "'").rows
  return rows[1] and rows[1][1]
end
local function events_of(kind) return nodeinfo.events_of(n, kind) end

local slot
step("heartbeats move an idle slot and status shows its health", function()
  await(function() local v = view(); return v.state == "running" and v.streaming end, 20000,
        "the realtime view follows its stream")
  await(function() local v = view(); return v.slot ~= nil and v.slot.wal_status ~= nil end, 10000,
        "status reports the view's slot")
  local v = view()
  slot = v.slot.slot
  check(v.slot.wal_status == "reserved", "the slot's wal_status is reserved", v.slot.wal_status)
  check(type(v.slot.retained_bytes) == "number" and v.slot.retained_bytes >= 0,
        "status says how many WAL bytes the slot retains", tostring(v.slot.retained_bytes))
  -- Nothing writes to this database now; only the heartbeat makes WAL.
  local before = pg:sql("SELECT pg_current_wal_lsn()").rows[1][1]
  await(function() return slot_value(slot, "confirmed_flush_lsn > '" .. before .. "'::pg_lsn") == "t" end,
        10000, "the heartbeat moved the idle slot's confirmed_flush_lsn past where the WAL was")
  pg:sql("INSERT INTO items VALUES (51, 'still streaming')")
  await(function() return count() == 51 end, 10000, "the stream still delivers changes")
end)

step("an invalidated slot re-snapshots by itself and says so", function()
  n:stop("pg.live")
  pg:sql("INSERT INTO filler SELECT g, repeat('x', 1000) FROM generate_series(1, 100) g")
  await(function() local v = view(); return v.slot ~= nil and v.slot.retained_bytes ~= nil
                                              and v.slot.retained_bytes > 100000 end, 10000,
        "a stopped view's status shows the WAL its slot retains growing")
  n:resume("pg.live")
  await(function() local v = view(); return v.state == "running" and v.streaming end, 20000,
        "resumed")
  n:shutdown()
  pg:sql("INSERT INTO items VALUES (52, 'while the node was away')")
  -- Write and switch WAL segments until a checkpoint invalidates the slot.
  await(function()
    pg:sql("INSERT INTO filler SELECT g, repeat('x', 1000) FROM generate_series(1, 3000) g")
    pg:sql("SELECT pg_switch_wal()")
    pg:sql("CHECKPOINT")
    return slot_value(slot, "wal_status") == "lost"
  end, 30000, "PostgreSQL invalidated the slot of the stopped node (wal_status lost)")
  n:start()
  await(function() return #events_of("slot:invalidated") > 0 end, 20000,
        "the view published a slot:invalidated event")
  local e = events_of("slot:invalidated")[1]
  check(string.find(e.message or "", slot, 1, true) ~= nil and string.find(e.message, "copies its source again", 1, true) ~= nil,
        "which names the slot and says the view copies its source again", e.message)
  await(function() local v = view(); return v.state == "running" and v.streaming and v.last_run ~= nil end, 20000,
        "the view follows a new slot")
  check(view().last_run.pulled == 52, "it took a new snapshot (52 rows)", tostring(view().last_run.pulled))
  check(slot_value(slot, "wal_status") == "reserved", "from a new slot under the same name")
  pg:sql("INSERT INTO items VALUES (53, 'after the new snapshot')")
  await(function() return count() == 53 end, 10000, "and streams again")
end)

step("a slot invalidated while it streams re-snapshots too", function()
  local before = #events_of("slot:invalidated")
  -- An open (prepared) transaction keeps the slot's restart_lsn where it
  -- began, however far the stream confirms; enough WAL then costs the slot.
  pg:sql("BEGIN; INSERT INTO filler VALUES (0, 'held'); PREPARE TRANSACTION 'hold'")
  await(function()
    pg:sql("INSERT INTO filler SELECT g, repeat('x', 1000) FROM generate_series(1, 3000) g")
    pg:sql("SELECT pg_switch_wal()")
    pg:sql("CHECKPOINT")
    return #events_of("slot:invalidated") > before
  end, 30000, "the streaming view published slot:invalidated")
  pg:sql("COMMIT PREPARED 'hold'")
  await(function() local v = view(); return v.state == "running" and v.streaming and v.slot ~= nil
                                              and v.slot.wal_status == "reserved" end, 20000,
        "and follows a new, healthy slot")
  pg:sql("INSERT INTO items VALUES (60, 'after the second invalidation')")
  await(function() return count() == 54 end, 10000, "with every row of the source")
end)

step("forget drops the slot and the publication", function()
  local r = n:forget("pg.live")[1]
  check(r.enabled == false, "forget stops the view")
  local dropped = table.concat(r.dropped or {}, ", ")
  check(string.find(dropped, "replication slot " .. slot, 1, true) ~= nil
        and string.find(dropped, "publication " .. slot, 1, true) ~= nil,
        "and says it dropped the slot and the publication", dropped)
  check(slot_value(slot, "1") == nil, "the slot is gone upstream")
  check_equal(pg:sql("SELECT count(*) FROM pg_publication WHERE pubname = '" .. slot .. "'").rows[1][1], "0",
              "the publication is gone upstream")
  -- A stopped view's slot keeps WAL too; status still reports it.
  await(function() local v = view(); return v.slot ~= nil and v.slot.wal_status == "missing" end, 10000,
        "after forget, status says the view's slot is missing upstream")
  local again = n:forget("pg.live")[1]
  check(#(again.dropped or {}) == 0, "forgetting again drops nothing")
  n:resume("pg.live")
  await(function() local v = view(); return v.state == "running" and v.streaming end, 20000,
        "resume starts afresh with a new slot")
  pg:sql("INSERT INTO items VALUES (61, 'after forget')")
  await(function() return count() == 55 end, 10000, "and follows the stream again")
  n:shutdown()
end)

step("a role that may not create the publication is told what to grant", function()
  pg:sql([[CREATE ROLE limited LOGIN REPLICATION;
           CREATE TABLE owned (id bigint PRIMARY KEY); ALTER TABLE owned OWNER TO limited;
           CREATE TABLE notmine (id bigint PRIMARY KEY); GRANT SELECT ON notmine TO limited]])
  local runs = 0
  local function run_as_limited(source)
    runs = runs + 1
    local cfg = config()
    cfg.remotes[1].conninfo = pg:conninfo():gsub("user=postgres", "user=limited")
    cfg.views[1].source = source
    local m = node.start("limited" .. runs, cfg)
    local r = m:sync("pg.live")[1]
    m:shutdown()
    return r
  end
  local r = run_as_limited("public.owned")
  check(r.state == "failed" and string.find(r.error or "", 'GRANT CREATE ON DATABASE "postgres" TO "limited"', 1, true) ~= nil,
        "without CREATE on the database: a sentence saying what to GRANT", r.error)
  pg:sql("GRANT CREATE ON DATABASE postgres TO limited")
  r = run_as_limited("public.notmine")
  check(r.state == "failed" and string.find(r.error or "", "only the table's owner may", 1, true) ~= nil,
        "a table the role does not own: a sentence naming the owner's part", r.error)
  r = run_as_limited("public.owned")
  check(r.state == "running", "with CREATE granted the view runs", r.error)
end)
